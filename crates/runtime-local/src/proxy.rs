//! The one port of a deployment: a small HTTP/1.1 reverse proxy that sends each request to the
//! next ready replica (round-robin), and answers 503 with a plain-text reason when none is.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

type Body = BoxBody<Bytes, hyper::Error>;

/// What the proxy needs to know about the replicas: which ports are ready, and what to say
/// when none is.
pub trait Backends: Send + Sync + 'static {
    /// Ports of the replicas ready now.
    fn ready_ports(&self) -> Vec<u16>;
    /// Why no replica can answer (the body of the 503).
    fn unavailable_reason(&self) -> String;
}

/// A running proxy; dropping it closes the port and every connection through it.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept loop owns the listener and the connections (a JoinSet): aborting it
        // closes them all.
        self.task.abort();
    }
}

/// Binds `host:port` with SO_REUSEADDR (a port the previous run just closed is reusable at
/// once, despite TIME_WAIT).
fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        // A name (`localhost`): its first address.
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "the bind host {host:?} is neither an IP address nor a name this machine                          resolves (use e.g. 127.0.0.1, 0.0.0.0 or localhost)"
                    ),
                )
            })?,
    };
    let ip = addr.ip();
    let socket = if ip.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Starts the proxy of a deployment on the port recorded in `port_file` when it is free
/// (waiting briefly: the previous owner may be closing it), else on a new port, which is then
/// recorded.
pub async fn start(
    host: &str,
    port_file: &Path,
    backends: Arc<dyn Backends>,
) -> Result<Proxy, String> {
    let recorded: Option<u16> = std::fs::read_to_string(port_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|p| *p != 0);
    let mut listener = None;
    if let Some(p) = recorded {
        for _ in 0..20 {
            match bind(host, p) {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(e.to_string()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let listener = match listener {
        Some(l) => l,
        None => bind(host, 0).map_err(|e| format!("cannot open a port on {host}: {e}"))?,
    };
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    if recorded != Some(port) {
        if let Some(parent) = port_file.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(port_file, format!("{port}\n"))
            .map_err(|e| format!("cannot record the port in {}: {e}", port_file.display()))?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let (b, n) = (backends.clone(), next.clone());
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            forward(req, b.clone(), n.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok(Proxy { port, task })
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn forward(
    req: Request<Incoming>,
    backends: Arc<dyn Backends>,
    next: Arc<AtomicUsize>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let ports = backends.ready_ports();
    if ports.is_empty() {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", backends.unavailable_reason()),
        ));
    }
    // Round-robin; a replica that refuses the connection (it just died) is skipped, which is
    // safe because nothing of the request was sent yet.
    let start = next.fetch_add(1, Ordering::Relaxed);
    let mut last_err = String::new();
    for i in 0..ports.len() {
        let port = ports[(start + i) % ports.len()];
        let stream = match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => s,
            Err(e) => {
                last_err = format!("replica on port {port}: {e}");
                continue;
            }
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => {
                    last_err = format!("replica on port {port}: {e}");
                    continue;
                }
            };
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut req = req;
        if let Some(pq) = req.uri().path_and_query().cloned() {
            *req.uri_mut() = pq.as_str().parse().unwrap_or_default();
        }
        // WebSocket (any `Upgrade`): once the replica answers 101, bytes flow both ways.
        let client_upgrade = req
            .headers()
            .contains_key(hyper::header::UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        return Ok(match sender.send_request(req).await {
            Ok(mut resp) => {
                // Our side speaks HTTP/1.1 whatever the replica spoke (Python's http.server
                // answers 1.0); hyper frames the body for the client.
                *resp.version_mut() = hyper::Version::HTTP_11;
                if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) =
                    (client_upgrade, resp.status())
                {
                    let backend = hyper::upgrade::on(&mut resp);
                    tokio::spawn(async move {
                        if let (Ok(c), Ok(b)) = tokio::join!(client, backend) {
                            let _ = tokio::io::copy_bidirectional(
                                &mut TokioIo::new(c),
                                &mut TokioIo::new(b),
                            )
                            .await;
                        }
                    });
                }
                resp.map(|b| b.boxed())
            }
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!("the replica on port {port} failed to answer: {e}\n"),
            ),
        });
    }
    Ok(text(
        StatusCode::BAD_GATEWAY,
        format!("no replica accepted the connection ({last_err})\n"),
    ))
}
