//! Reading a kubeconfig file (the format `kubectl` uses): the current context's cluster and
//! user, resolved into a [`Connection`]. Only what a daemon needs is supported: server, CA,
//! TLS skip, bearer token (inline or `tokenFile`), client certificate and key (inline data or
//! files). Exec and auth-provider plugins are refused with a clear error: a host daemon must not
//! depend on a cloud CLI being installed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::connection::{Connection, Pem, TokenSource};
use super::error::KubeconfigError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawKubeconfig {
    #[serde(default)]
    clusters: Vec<Named<RawCluster>>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<Named<RawContext>>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context")]
    value: T,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: RawUser,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawCluster {
    server: String,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    tls_server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawUser {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    exec: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "auth-provider")]
    auth_provider: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawContext {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// Reads `path` and resolves its current context (or `context` when given).
pub fn load(path: &Path, context: Option<&str>) -> Result<Connection, KubeconfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, context).map_err(|reason| KubeconfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses kubeconfig text; relative file paths in it are resolved against `base` (the
/// kubeconfig's directory, as kubectl does).
pub fn parse(text: &str, base: &Path, context: Option<&str>) -> Result<Connection, String> {
    let raw: RawKubeconfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let wanted = match context.map(str::to_string).or(raw.current_context.clone()) {
        Some(name) if !name.is_empty() => name,
        _ => return Err("no current-context is set and no context was named".into()),
    };
    let ctx = find(&raw.contexts, &wanted, "context")?;
    let cluster = find(&raw.clusters, &ctx.cluster, "cluster")?;
    let user = match &ctx.user {
        Some(name) if !name.is_empty() => Some(
            &raw.users
                .iter()
                .find(|u| &u.name == name)
                .ok_or_else(|| {
                    format!("user {name:?} (named by context {wanted:?}) is not defined")
                })?
                .user,
        ),
        _ => None,
    };
    if cluster.tls_server_name.is_some() {
        return Err(format!(
            "cluster {:?}: tls-server-name is not supported; use a server URL whose host the certificate names",
            ctx.cluster
        ));
    }
    let server = url::Url::parse(&cluster.server).map_err(|e| {
        format!(
            "cluster {:?}: server {:?}: {e}",
            ctx.cluster, cluster.server
        )
    })?;
    let ca = pem_source(
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
        base,
        "certificate-authority",
    )?;
    let mut conn = Connection {
        server,
        ca,
        insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
        token: TokenSource::None,
        client_cert: None,
        client_key: None,
        namespace: ctx.namespace.clone(),
    };
    if let Some(user) = user {
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(format!(
                "user {:?} uses an exec or auth-provider plugin; ferrolb needs a token, a token file or a client certificate",
                ctx.user.as_deref().unwrap_or_default()
            ));
        }
        if user.username.is_some() {
            return Err("basic authentication (username/password) is not supported".into());
        }
        conn.token = match (&user.token, &user.token_file) {
            (Some(token), _) => TokenSource::Static(token.trim().to_string()),
            (None, Some(file)) => TokenSource::File(resolve(base, file)),
            (None, None) => TokenSource::None,
        };
        conn.client_cert = pem_source(
            user.client_certificate_data.as_deref(),
            user.client_certificate.as_deref(),
            base,
            "client-certificate",
        )?;
        conn.client_key = pem_source(
            user.client_key_data.as_deref(),
            user.client_key.as_deref(),
            base,
            "client-key",
        )?;
        if conn.client_cert.is_some() != conn.client_key.is_some() {
            return Err("client-certificate and client-key must be given together".into());
        }
    }
    Ok(conn)
}

fn find<'a, T>(items: &'a [Named<T>], name: &str, what: &str) -> Result<&'a T, String> {
    items
        .iter()
        .find(|n| n.name == name)
        .map(|n| &n.value)
        .ok_or_else(|| {
            let known: Vec<&str> = items.iter().map(|n| n.name.as_str()).collect();
            format!("{what} {name:?} is not defined (defined: {known:?})")
        })
}

/// Inline base64 data wins over a file, as in kubectl.
fn pem_source(
    data: Option<&str>,
    file: Option<&Path>,
    base: &Path,
    key: &str,
) -> Result<Option<Pem>, String> {
    if let Some(data) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("{key}-data is not valid base64: {e}"))?;
        return Ok(Some(Pem::Inline(bytes)));
    }
    Ok(file.map(|f| Pem::File(resolve(base, f))))
}

fn resolve(base: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    }
}

/// A kubeconfig for one cluster and one bearer token, as `ferrolb kubeconfig` writes it.
/// Strings are written JSON-quoted (valid YAML), so any path or URL survives.
pub fn render(server: &str, ca_pem: Option<&[u8]>, token_file: &Path) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let ca_line = match ca_pem {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb\n  cluster:\n    server: {}\n{ca_line}users:\n- name: ferrolb\n  user:\n    tokenFile: {}\ncontexts:\n- name: ferrolb\n  context:\n    cluster: ferrolb\n    user: ferrolb\ncurrent-context: ferrolb\n",
        quote(server),
        quote(&token_file.display().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTg==
- name: other
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
users:
- name: sa
  user:
    tokenFile: token
- name: admin
  user:
    token: abc
contexts:
- name: lab
  context: {cluster: lab, user: sa, namespace: kube-system}
- name: other
  context: {cluster: other, user: admin}
current-context: lab
"#;

    #[test]
    fn current_context_with_token_file_and_inline_ca() {
        let c = parse(KUBECONFIG, Path::new("/etc/ferrolb"), None).unwrap();
        assert_eq!(c.server.as_str(), "https://10.0.0.1:6443/");
        assert_eq!(c.ca, Some(Pem::Inline(b"-----BEGIN".to_vec())));
        assert_eq!(c.token, TokenSource::File("/etc/ferrolb/token".into()));
        assert_eq!(c.namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn named_context_with_static_token() {
        let c = parse(KUBECONFIG, Path::new("/x"), Some("other")).unwrap();
        assert!(c.insecure_skip_tls_verify);
        assert_eq!(c.token, TokenSource::Static("abc".into()));
    }

    #[test]
    fn errors_name_what_is_missing() {
        let e = parse(KUBECONFIG, Path::new("/x"), Some("nope")).unwrap_err();
        assert!(e.contains("context \"nope\""), "{e}");
        let e = parse("clusters: []\n", Path::new("/x"), None).unwrap_err();
        assert!(e.contains("current-context"), "{e}");
        let exec = KUBECONFIG.replace("tokenFile: token", "exec: {command: gcloud}");
        let e = parse(&exec, Path::new("/x"), None).unwrap_err();
        assert!(e.contains("exec"), "{e}");
        assert!(parse(": : :\n- [", Path::new("/x"), None).is_err());
    }

    #[test]
    fn render_parses_back() {
        let text = render(
            "https://10.0.0.1:6443",
            Some(b"PEM"),
            Path::new("/etc/ferrolb/token"),
        );
        let c = parse(&text, Path::new("/"), None).unwrap();
        assert_eq!(c.ca, Some(Pem::Inline(b"PEM".to_vec())));
        assert_eq!(c.token, TokenSource::File("/etc/ferrolb/token".into()));
    }
}
