//! The configuration of the API server's routing sidecar (envoy), kept for pods the original operator created:
//! requests with `X-Yatai-Debug: true` go to the debug Service, the rest to the bento in the pod. Its content
//! changing never restarts a pod (it is a mounted ConfigMap).

use serde_json::json;

/// envoy's admin port; the sidecar's probes ask it whether the proxy is live.
pub const ADMIN_PORT: u16 = 9901;

fn cluster(name: &str, address: &str, port: i32) -> serde_json::Value {
    json!({
        "name": name,
        "connect_timeout": "0.25s",
        "type": "strict_dns",
        "dns_lookup_family": "v4_only",
        "lb_policy": "round_robin",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}}}}]}],
        },
    })
}

/// envoy's static configuration as YAML.
pub fn config(
    listen: i32,
    debug_host: &str,
    debug_port: i32,
    production_host: &str,
    production_port: i32,
) -> String {
    let route = |debug: bool| {
        let mut m = json!({"prefix": "/"});
        if debug {
            m["headers"] = json!([{"name": "X-Yatai-Debug", "string_match": {"exact": "true"}}]);
        }
        json!({"match": m, "route": {"cluster": if debug { "service_debug" } else { "service_production" }}})
    };
    let config = json!({
        "static_resources": {
            "listeners": [{
                "name": "listener_0",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": listen}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                        }],
                        "route_config": {
                            "name": "local_route",
                            "virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [route(true), route(false)]}],
                        },
                    },
                }]}],
            }],
            "clusters": [
                cluster("service_debug", debug_host, debug_port),
                cluster("service_production", production_host, production_port),
            ],
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}},
    });
    serde_yaml_ng::to_string(&config).expect("JSON serialises to YAML")
}
