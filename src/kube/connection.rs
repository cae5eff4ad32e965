//! Where the API server is and how to authenticate to it: resolved from a kubeconfig or from
//! `server` + `token_file` + `ca_file` in ferrolb.toml, then turned into an HTTP client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::Mutex;

use super::error::KubeError;

/// PEM data, inline or in a file read when the client is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// The bytes themselves (kubeconfig `…-data`).
    Inline(Vec<u8>),
    /// A file to read.
    File(PathBuf),
}

impl Pem {
    fn read(&self, what: &'static str) -> Result<Vec<u8>, KubeError> {
        match self {
            Pem::Inline(bytes) => Ok(bytes.clone()),
            Pem::File(path) => std::fs::read(path).map_err(|source| KubeError::ReadFile {
                what,
                path: path.clone(),
                source,
            }),
        }
    }
}

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No token (client certificates, or an unauthenticated test server).
    None,
    /// A fixed token.
    Static(String),
    /// A file, re-read whenever it changes: bound service-account tokens rotate.
    File(PathBuf),
}

/// Everything needed to reach one API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The API server's base URL.
    pub server: url::Url,
    /// CA bundle that signs the server's certificate; `None` uses no roots at all, so HTTPS
    /// then needs `insecure_skip_tls_verify` (a cluster CA is never a public one).
    pub ca: Option<Pem>,
    /// Skip server certificate verification (explicit opt-in only).
    pub insecure_skip_tls_verify: bool,
    /// Bearer token.
    pub token: TokenSource,
    /// Client certificate (PEM).
    pub client_cert: Option<Pem>,
    /// Client key (PEM).
    pub client_key: Option<Pem>,
    /// Default namespace of the context (informational).
    pub namespace: Option<String>,
}

impl Connection {
    /// A connection from ferrolb.toml's `server`, `token_file` and `ca_file`.
    pub fn from_parts(
        server: url::Url,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        insecure_skip_tls_verify: bool,
    ) -> Connection {
        Connection {
            server,
            ca: ca_file.map(Pem::File),
            insecure_skip_tls_verify,
            token: token_file.map_or(TokenSource::None, TokenSource::File),
            client_cert: None,
            client_key: None,
            namespace: None,
        }
    }

    /// Builds the HTTP client: rustls with exactly the cluster's CA (never the system roots),
    /// and the client certificate when there is one.
    pub fn http_client(&self) -> Result<reqwest::Client, KubeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeError::Tls(e.to_string()))?;
        let builder = if self.insecure_skip_tls_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(ca) = &self.ca {
                let pem = ca.read("CA certificate")?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| KubeError::Tls(format!("CA bundle: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| KubeError::Tls(format!("CA bundle: {e}")))?;
                }
            }
            builder.with_root_certificates(roots)
        };
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let cert_pem = cert.read("client certificate")?;
                let key_pem = key.read("client key")?;
                let chain = CertificateDer::pem_slice_iter(&cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| KubeError::Tls(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| KubeError::Tls(format!("client key: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| KubeError::Tls(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .user_agent(concat!("ferrolb/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_keepalive(std::time::Duration::from_secs(30))
            // Watches are long-lived; each request sets its own timeout.
            .build()
            .map_err(|e| KubeError::Tls(e.to_string()))
    }
}

/// Reads the bearer token, re-reading the file only when its modification time changed.
#[derive(Debug)]
pub struct TokenReader {
    source: TokenSource,
    cached: Mutex<Option<(SystemTime, String)>>,
}

impl TokenReader {
    /// A reader for `source`.
    pub fn new(source: TokenSource) -> TokenReader {
        TokenReader {
            source,
            cached: Mutex::new(None),
        }
    }

    /// The current token, if any.
    pub async fn token(&self) -> Result<Option<String>, KubeError> {
        match &self.source {
            TokenSource::None => Ok(None),
            TokenSource::Static(token) => Ok(Some(token.clone())),
            TokenSource::File(path) => self.read_file(path).await.map(Some),
        }
    }

    async fn read_file(&self, path: &Path) -> Result<String, KubeError> {
        let read_err = |source| KubeError::ReadFile {
            what: "token file",
            path: path.to_path_buf(),
            source,
        };
        let modified = tokio::fs::metadata(path)
            .await
            .and_then(|m| m.modified())
            .map_err(read_err)?;
        let mut cached = self.cached.lock().await;
        if let Some((when, token)) = cached.as_ref() {
            if *when == modified {
                return Ok(token.clone());
            }
        }
        let token = tokio::fs::read_to_string(path)
            .await
            .map_err(read_err)?
            .trim()
            .to_string();
        *cached = Some((modified, token.clone()));
        Ok(token)
    }
}

/// `insecure_skip_tls_verify`: accepts any server certificate but still checks the handshake
/// signatures, as Go's `InsecureSkipVerify` does.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
