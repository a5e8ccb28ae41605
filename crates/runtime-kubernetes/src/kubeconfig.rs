//! Kubeconfigs as users register them: checked (with messages that never echo their content), redacted for
//! display, and turned into a `kube::Client`.
//!
//! A kubeconfig registered through the API comes from a user, not from the server's administrator, so by default
//! it may not make the server run a program (`exec`, `auth-provider` plugins) or read the server's own files
//! (`tokenFile`, `client-certificate`, `client-key`, `certificate-authority` paths): with `server:` pointing
//! elsewhere, a `tokenFile` naming the server's service-account token would send that token to whoever registered
//! the kubeconfig. [`KubeconfigPolicy::allow_local_credentials`] lifts this for kubeconfigs an administrator
//! provides on the server's machine.

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_yaml_ng::Value;

/// What a kubeconfig may refer to besides inline data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KubeconfigPolicy {
    /// Allow `exec` / `auth-provider` plugins and paths to files on the server's machine.
    pub allow_local_credentials: bool,
}

/// Why a kubeconfig cannot be used. The message never contains a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KubeconfigError(pub String);

fn err(msg: impl Into<String>) -> KubeconfigError {
    KubeconfigError(msg.into())
}

/// Parses and checks a kubeconfig: YAML of a kubeconfig, a current context that exists, its cluster with an
/// `http(s)` server URL, its user, and no local credentials unless the policy allows them. Returns the parsed
/// kubeconfig.
pub fn parse(yaml: &str, policy: KubeconfigPolicy) -> Result<Kubeconfig, KubeconfigError> {
    if yaml.trim().is_empty() {
        return Err(err("the kubeconfig is empty"));
    }
    // Parse errors of the YAML libraries quote the offending text, which may be a token: only the place is told.
    if let Err(e) = serde_yaml_ng::from_str::<Value>(yaml) {
        let at = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default();
        return Err(err(format!("the kubeconfig is not valid YAML{at}")));
    }
    let config = Kubeconfig::from_yaml(yaml).map_err(|_| {
        err("the kubeconfig is YAML but not a kubeconfig: expected `clusters`, `contexts`, `users` and \
             `current-context` as `kubectl config view --minify --flatten` prints them")
    })?;
    let current = config
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            err("the kubeconfig has no current-context: set one \
                 (`kubectl config use-context NAME`) or export it with `kubectl config view --minify --flatten`")
        })?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| {
            err(format!(
                "the kubeconfig's current-context {current:?} is not among its contexts"
            ))
        })?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| {
            err(format!(
                "the cluster {:?} of context {current:?} is not among the kubeconfig's clusters",
                context.cluster
            ))
        })?;
    let server = cluster.server.as_deref().unwrap_or_default();
    let uri: Result<http::Uri, _> = server.parse();
    let scheme_ok = uri
        .as_ref()
        .ok()
        .and_then(|u| u.scheme_str())
        .is_some_and(|s| s == "https" || s == "http");
    if !scheme_ok || uri.as_ref().ok().and_then(|u| u.host()).is_none() {
        return Err(err(format!(
            "the cluster {:?} has no usable server URL (expected https://HOST[:PORT])",
            context.cluster
        )));
    }
    let user = match &context.user {
        Some(name) => Some(
            config
                .auth_infos
                .iter()
                .find(|u| &u.name == name)
                .ok_or_else(|| {
                    err(format!(
                        "the user {name:?} of context {current:?} is not among the kubeconfig's users"
                    ))
                })?,
        ),
        None => None,
    };
    if !policy.allow_local_credentials {
        let mut local = Vec::new();
        if cluster.certificate_authority.is_some() {
            local.push("certificate-authority (a file path; use certificate-authority-data)");
        }
        if let Some(auth) = user.and_then(|u| u.auth_info.as_ref()) {
            if auth.exec.is_some() {
                local.push("exec (runs a program on the server)");
            }
            if auth.auth_provider.is_some() {
                local.push("auth-provider (a plugin on the server)");
            }
            if auth.token_file.is_some() {
                local.push("tokenFile (a file path; use token)");
            }
            if auth.client_certificate.is_some() {
                local.push("client-certificate (a file path; use client-certificate-data)");
            }
            if auth.client_key.is_some() {
                local.push("client-key (a file path; use client-key-data)");
            }
        }
        if !local.is_empty() {
            return Err(err(format!(
                "the kubeconfig refers to credentials on the server's machine, which a registered cluster may not: \
                 {}. Export a self-contained one (`kubectl config view --minify --flatten`, a service account token)",
                local.join(", ")
            )));
        }
    }
    Ok(config)
}

/// Checks a kubeconfig when a cluster is registered (strict policy); the error says what to fix.
pub fn validate_kubeconfig(yaml: &str) -> Result<(), String> {
    parse(yaml, KubeconfigPolicy::default())
        .map(|_| ())
        .map_err(|e| e.0)
}

/// A `kube::Config` for the kubeconfig's current context.
pub async fn config(yaml: &str, policy: KubeconfigPolicy) -> Result<kube::Config, KubeconfigError> {
    let kubeconfig = parse(yaml, policy)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| {
            use kube::config::KubeconfigError as K;
            // Fixed messages: the library's may quote the content.
            err(match e {
                K::CurrentContextNotSet => "the kubeconfig has no current-context".to_string(),
                K::MissingClusterUrl | K::ParseClusterUrl(_) => {
                    "the kubeconfig's cluster has no usable server URL".to_string()
                }
                K::ParseCertificates(_) => {
                    "the kubeconfig's certificate-authority-data is not a PEM certificate (base64)".to_string()
                }
                _ => "the kubeconfig's current context cannot be loaded: check its cluster, user and \
                      base64 data fields"
                    .to_string(),
            })
        })
}

const REDACTED: &str = "REDACTED";

/// Keys whose values are credentials wherever they appear.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '_'], "");
    [
        "token",
        "password",
        "secret",
        "clientkeydata",
        "clientkey",
        "idtoken",
        "refreshtoken",
        "accesstoken",
        "apikey",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A URL without `user:password@`.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{REDACTED}@{host}{path}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// Redacts a user entry: every string or number except harmless names; secret keys whatever their value.
fn redact_user(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or_default();
                let harmless = matches!(
                    key,
                    "username" | "command" | "apiVersion" | "name" | "interactiveMode"
                ) && matches!(v, Value::String(_));
                if is_secret_key(key) {
                    *v = Value::String(REDACTED.into());
                } else if !harmless {
                    redact_user(v);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(redact_user),
        Value::String(_) | Value::Number(_) | Value::Tagged(_) => {
            *value = Value::String(REDACTED.into())
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Redacts the rest: values of secret keys, user info in URLs.
fn redact_value(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or_default();
                if is_secret_key(key) {
                    *v = Value::String(REDACTED.into());
                } else if matches!(key, "server" | "proxy-url") {
                    if let Value::String(s) = v {
                        *s = strip_userinfo(s);
                    }
                } else {
                    redact_value(v);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// The kubeconfig for display: clusters (server without user info), contexts and user names kept; every token,
/// password, client key, certificate and plugin argument of the users replaced by `REDACTED`.
pub fn redact_kubeconfig(yaml: &str) -> Result<String, String> {
    let mut doc: Value = serde_yaml_ng::from_str(yaml).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default();
        format!("the kubeconfig is not valid YAML{at}")
    })?;
    if let Value::Mapping(map) = &mut doc {
        for (k, v) in map.iter_mut() {
            match k.as_str() {
                Some("users") => {
                    if let Value::Sequence(users) = v {
                        for u in users {
                            if let Value::Mapping(entry) = u {
                                for (uk, uv) in entry.iter_mut() {
                                    if uk.as_str() != Some("name") {
                                        redact_user(uv);
                                    }
                                }
                            }
                        }
                    }
                }
                _ => redact_value(v),
            }
        }
    }
    serde_yaml_ng::to_string(&doc).map_err(|_| "the kubeconfig cannot be printed".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const GOOD: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster:
    server: https://admin:hunter2@k8s.example.com:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
contexts:
- name: prod
  context: {cluster: prod-cluster, user: deployer, namespace: yatai}
users:
- name: deployer
  user:
    token: eyJhbGciOiJSUzI1NiJ9.SECRET-TOKEN.sig
    client-key-data: U0VDUkVULUtFWQ==
    client-certificate-data: Q0VSVA==
- name: other
  user:
    username: alice
    password: SECRET-PASSWORD
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
      args: [eks, get-token, --cluster-name, prod, --role-arn, SECRET-ROLE]
      env: [{name: AWS_PROFILE, value: SECRET-AWS}]
- name: oidc
  user:
    auth-provider:
      name: oidc
      config: {client-secret: SECRET-OIDC, id-token: SECRET-ID, idp-issuer-url: https://issuer}
"#;

    #[test]
    fn a_good_kubeconfig_validates() {
        validate_kubeconfig(GOOD).unwrap();
    }

    #[test]
    fn redaction_removes_every_credential() {
        let out = redact_kubeconfig(GOOD).unwrap();
        for secret in [
            "SECRET",
            "hunter2",
            "U0VDUkVULUtFWQ",
            "eyJhbGci",
            "Q0VSVA",
            "get-token",
        ] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        for kept in [
            "k8s.example.com:6443",
            "prod-cluster",
            "deployer",
            "alice",
            "namespace: yatai",
            "command: aws",
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
        ] {
            assert!(out.contains(kept), "{kept} missing in\n{out}");
        }
        assert!(out.contains("token: REDACTED"), "{out}");
    }

    #[test]
    fn bad_kubeconfigs_give_clear_errors_without_secrets() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("users: [\n  token: SECRET-TOKEN", "not valid YAML (line"),
            ("- just\n- a list with SECRET-TOKEN", "not a kubeconfig"),
            (
                "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers:\n- name: u\n  user: {token: SECRET-TOKEN}\n",
                "no current-context",
            ),
            (
                "current-context: nope\ncontexts: []\nclusters: []\nusers: []\n",
                "\"nope\" is not among its contexts",
            ),
            (
                "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'ftp:/nohost'}}]\nusers: [{name: u, user: {token: SECRET-TOKEN}}]\n",
                "no usable server URL",
            ),
            (
                "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'https://k'}}]\nusers: [{name: u, user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}}]\n",
                "tokenFile",
            ),
            (
                "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'https://k'}}]\nusers: [{name: u, user: {exec: {command: sh, args: [-c, 'SECRET-TOKEN']}}}]\n",
                "exec (runs a program on the server)",
            ),
        ];
        for (yaml, expected) in cases {
            let e = validate_kubeconfig(yaml).unwrap_err();
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn local_credentials_are_allowed_by_policy() {
        let yaml = "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'https://k'}}]\nusers: [{name: u, user: {tokenFile: /t}}]\n";
        parse(
            yaml,
            KubeconfigPolicy {
                allow_local_credentials: true,
            },
        )
        .unwrap();
    }
}
