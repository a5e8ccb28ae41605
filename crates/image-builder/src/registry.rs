//! The OCI distribution API, through `oci-client`: base image by digest, blob existence,
//! cross-repository mounts, chunked uploads from disk, manifests. Errors become one clear
//! [`BuildError`] each: unreachable, credentials refused, anything else the registry said.

use std::path::Path;

use bytes::BytesMut;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tokio::io::AsyncReadExt;

use crate::naming::RegistryConfig;
use crate::BuildError;

/// Bytes per PATCH of a chunked upload.
const CHUNK: usize = 8 << 20;

/// A registry session: one client for the push target and the base's registry.
pub struct Registry {
    client: Client,
    target_host: String,
    target_auth: RegistryAuth,
}

/// How the push target is authenticated.
pub fn auth_of(cfg: &RegistryConfig) -> RegistryAuth {
    match (&cfg.username, &cfg.password) {
        (Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
        // A password without a user name is a registry token.
        (None, Some(token)) => RegistryAuth::Bearer(token.clone()),
        _ => RegistryAuth::Anonymous,
    }
}

impl Registry {
    /// A session for `cfg`, talking plain http to the target when it is not secure and to the
    /// hosts in `insecure`.
    pub fn new(cfg: &RegistryConfig, insecure: &[String]) -> Self {
        crate::install_crypto_provider();
        let mut plain: Vec<String> = insecure.to_vec();
        if !cfg.secure {
            plain.push(cfg.host());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            ..Default::default()
        };
        Registry {
            client: Client::new(config),
            target_host: cfg.host(),
            target_auth: auth_of(cfg),
        }
    }

    /// The credentials for `r`: the target's on the target's host, none elsewhere.
    pub fn auth_for(&self, r: &Reference) -> RegistryAuth {
        if r.resolve_registry() == self.target_host || r.registry() == self.target_host {
            self.target_auth.clone()
        } else {
            RegistryAuth::Anonymous
        }
    }

    /// Authenticates for `op` on `r` (a no-op for anonymous registries).
    pub async fn login(&self, r: &Reference, op: RegistryOperation) -> Result<(), BuildError> {
        self.client
            .auth(r, &self.auth_for(r), op)
            .await
            .map(|_| ())
            .map_err(|e| classify(e, r))
    }

    /// The manifest (for the linux/amd64 platform of an index), its digest and the config JSON.
    pub async fn pull_manifest_and_config(
        &self,
        r: &Reference,
    ) -> Result<(oci_client::manifest::OciImageManifest, String, String), BuildError> {
        self.client
            .pull_manifest_and_config(r, &self.auth_for(r))
            .await
            .map_err(|e| classify(e, r))
    }

    /// The raw manifest under `r`, `None` when there is none.
    pub async fn manifest_raw(&self, r: &Reference) -> Result<Option<bytes::Bytes>, BuildError> {
        match self
            .client
            .pull_manifest_raw(
                r,
                &self.auth_for(r),
                &[
                    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                ],
            )
            .await
        {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify(e, r)),
        }
    }

    /// Downloads blob `digest` of `r` into `dest`.
    pub async fn pull_blob_to(
        &self,
        r: &Reference,
        digest: &str,
        dest: &Path,
    ) -> Result<(), BuildError> {
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth_for(r))
            .await;
        let file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| BuildError::Io(format!("{}: {e}", dest.display())))?;
        self.client
            .pull_blob(r, digest, file)
            .await
            .map_err(|e| classify(e, r))
    }

    /// Reads a small blob into memory.
    pub async fn pull_blob_bytes(
        &self,
        r: &Reference,
        digest: &str,
    ) -> Result<Vec<u8>, BuildError> {
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth_for(r))
            .await;
        let mut out = Vec::new();
        self.client
            .pull_blob(r, digest, &mut out)
            .await
            .map_err(|e| classify(e, r))?;
        Ok(out)
    }

    /// Whether `r`'s repository has blob `digest`.
    pub async fn has_blob(&self, r: &Reference, digest: &str) -> Result<bool, BuildError> {
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth_for(r))
            .await;
        self.client
            .blob_exists(r, digest)
            .await
            .map_err(|e| classify(e, r))
    }

    /// Asks the registry to link blob `digest` of `from` into `to`'s repository (same
    /// registry); `false` when it would not (then the blob must be copied).
    pub async fn mount(&self, to: &Reference, from: &Reference, digest: &str) -> bool {
        if to.resolve_registry() != from.resolve_registry() {
            return false;
        }
        self.client.mount_blob(to, from, digest).await.is_ok()
            && self.has_blob(to, digest).await.unwrap_or(false)
    }

    /// Uploads the file at `path` as blob `digest` into `r`'s repository, in chunks.
    pub async fn push_blob_file(
        &self,
        r: &Reference,
        path: &Path,
        digest: &str,
        size: u64,
    ) -> Result<(), BuildError> {
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth_for(r))
            .await;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| BuildError::Io(format!("{}: {e}", path.display())))?;
        let stream = futures::stream::unfold(file, |mut f| async move {
            let mut buf = BytesMut::with_capacity(CHUNK);
            loop {
                match f.read_buf(&mut buf).await {
                    Ok(0) if buf.is_empty() => return None,
                    Ok(0) => break,
                    Ok(_) if buf.len() >= CHUNK => break,
                    Ok(_) => continue,
                    Err(e) => return Some((Err(OciDistributionError::IoError(e)), f)),
                }
            }
            Some((Ok(buf.freeze()), f))
        });
        self.client
            .push_blob_stream(r, stream, digest, Some(size))
            .await
            .map(|_| ())
            .map_err(|e| classify(e, r))
    }

    /// Uploads a small blob from memory.
    pub async fn push_blob_bytes(
        &self,
        r: &Reference,
        data: Vec<u8>,
        digest: &str,
    ) -> Result<(), BuildError> {
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth_for(r))
            .await;
        self.client
            .push_blob(r, data, digest)
            .await
            .map(|_| ())
            .map_err(|e| classify(e, r))
    }

    /// Puts manifest `body` under `r` (its tag).
    pub async fn push_manifest(
        &self,
        r: &Reference,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<(), BuildError> {
        self.client
            .push_manifest_raw(
                r,
                body,
                media_type
                    .parse()
                    .map_err(|_| BuildError::Registry(format!("bad media type {media_type}")))?,
            )
            .await
            .map(|_| ())
            .map_err(|e| classify(e, r))
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                format!("{:?}", e.code).as_str(),
                "ManifestUnknown" | "NameUnknown" | "BlobUnknown"
            )
        }),
        _ => false,
    }
}

/// One clear error for a registry failure.
pub fn classify(e: OciDistributionError, r: &Reference) -> BuildError {
    let registry = r.resolve_registry().to_string();
    match &e {
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
            BuildError::RegistryUnreachable {
                registry,
                detail: error_chain(re),
            }
        }
        OciDistributionError::RequestError(re)
            if matches!(re.status().map(|s| s.as_u16()), Some(401 | 403)) =>
        {
            BuildError::RegistryAuth {
                registry,
                detail: error_chain(re),
            }
        }
        OciDistributionError::RequestError(re) => BuildError::Registry(format!(
            "request to the registry {registry} failed: {}",
            error_chain(re)
        )),
        OciDistributionError::AuthenticationFailure(d) => BuildError::RegistryAuth {
            registry,
            detail: d.clone(),
        },
        OciDistributionError::UnauthorizedError { url } => BuildError::RegistryAuth {
            registry,
            detail: format!("401 Unauthorized for {url}"),
        },
        OciDistributionError::ServerError {
            code: 401 | 403,
            url,
            message,
        } => BuildError::RegistryAuth {
            registry,
            detail: format!("{url}: {message}"),
        },
        OciDistributionError::RegistryError { envelope, url }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(format!("{:?}", x.code).as_str(), "Unauthorized" | "Denied")) =>
        {
            BuildError::RegistryAuth {
                registry,
                detail: format!("{url}: {e}"),
            }
        }
        _ if is_not_found(&e) => {
            BuildError::Registry(format!("{r} was not found in the registry ({e})"))
        }
        _ => BuildError::Registry(format!("registry {registry}: {e}")),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}
