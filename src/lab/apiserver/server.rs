//! Listeners and connections: HTTP and HTTPS (HTTP/1.1) on the configured addresses, every
//! connection served by `handler`; restarts that close every connection, refuse new ones for a
//! while and listen again on the same ports, keeping the store.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::faults::Faults;
use super::handler;
use super::reqlog::RequestLog;
use super::services::ServiceRanges;
use super::store::Store;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Plain HTTP listen addresses (port 0: any free port).
    pub http: Vec<SocketAddr>,
    /// HTTPS listen addresses.
    pub https: Vec<SocketAddr>,
    /// The bearer token clients must present; `None` lets anyone in.
    pub token: Option<String>,
    /// Whether plain HTTP requests without a token are refused too (by default they are let in,
    /// as kubectl sends its token only over HTTPS; a wrong token is refused everywhere).
    pub http_requires_token: bool,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// How many changes are kept for watches that resume (older versions get 410 Gone).
    pub history: usize,
    /// More DNS names for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Service cluster IP and node port ranges.
    pub service_ranges: ServiceRanges,
    /// Plays the endpoint controller for the lab: every Service with a selector gets an
    /// EndpointSlice with one endpoint per Node (see `endpoints`).
    pub lab_endpoints: bool,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            http: Vec::new(),
            https: Vec::new(),
            token: None,
            http_requires_token: false,
            bookmark_interval: Duration::from_secs(60),
            history: 10_000,
            extra_sans: Vec::new(),
            service_ranges: ServiceRanges::default(),
            lab_endpoints: false,
        }
    }
}

/// What every connection shares.
pub struct Shared {
    pub(crate) store: Store,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    pub(crate) config: ApiServerConfig,
    pub(crate) server_address: String,
    pub(crate) ca_pem: String,
    pub(crate) http_addrs: Vec<SocketAddr>,
    pub(crate) https_addrs: Vec<SocketAddr>,
    tls: TlsAcceptor,
    epoch: watch::Sender<u64>,
    stopped: AtomicBool,
    restart_lock: tokio::sync::Mutex<()>,
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No listen address.
    #[error("no listen address given (--listen or --https-listen)")]
    NoListener,
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The certificates could not be made.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

fn std_bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| StartError::Bind { addr, source })?;
    TcpListener::from_std(l).map_err(|source| StartError::Bind { addr, source })
}

/// Starts the listeners; returns the shared state and the CA PEM.
pub(crate) async fn start(config: ApiServerConfig) -> Result<(Arc<Shared>, String), StartError> {
    if config.http.is_empty() && config.https.is_empty() {
        return Err(StartError::NoListener);
    }
    let mut listeners = Vec::new();
    let (mut http_addrs, mut https_addrs) = (Vec::new(), Vec::new());
    for (addrs, tls, out) in [
        (&config.http, false, &mut http_addrs),
        (&config.https, true, &mut https_addrs),
    ] {
        for addr in addrs {
            let l = std_bind(*addr)?;
            let local = l.local_addr().map_err(|source| StartError::Bind {
                addr: *addr,
                source,
            })?;
            out.push(local);
            listeners.push((l, tls));
        }
    }
    let ips: Vec<_> = https_addrs.iter().map(SocketAddr::ip).collect();
    let tls = super::tls::generate(&ips, &config.extra_sans)?;
    let first = https_addrs.first().or(http_addrs.first()).copied();
    let server_address = first.map(|a| a.to_string()).unwrap_or_default();
    let store = Store::new(config.history);
    seed(&store);
    let shared = Arc::new(Shared {
        store,
        faults: Faults::default(),
        log: RequestLog::default(),
        config,
        server_address,
        ca_pem: tls.ca_pem.clone(),
        http_addrs,
        https_addrs,
        tls: TlsAcceptor::from(tls.config.clone()),
        epoch: watch::channel(0).0,
        stopped: AtomicBool::new(false),
        restart_lock: tokio::sync::Mutex::new(()),
    });
    for (l, tls) in listeners {
        tokio::spawn(accept_loop(shared.clone(), l, tls));
    }
    Ok((shared, tls.ca_pem))
}

/// The namespaces a fresh cluster has.
fn seed(store: &Store) {
    let created = super::meta::now_rfc3339();
    let result = store.transact(|txn| {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            txn.put(
                "namespaces",
                "",
                ns,
                json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": ns,
                        "uid": super::meta::new_uid(),
                        "creationTimestamp": created,
                        "labels": {"kubernetes.io/metadata.name": ns},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }),
            );
        }
        Ok(())
    });
    debug_assert!(result.is_ok());
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: bool) {
    let mut epoch = shared.epoch.subscribe();
    epoch.borrow_and_update();
    loop {
        tokio::select! {
            _ = epoch.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    RequestLog::bump(&shared.log.connections);
                    tokio::spawn(serve_tcp(shared.clone(), stream, tls, epoch.clone()));
                }
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

async fn serve_tcp(
    shared: Arc<Shared>,
    stream: TcpStream,
    tls: bool,
    mut epoch: watch::Receiver<u64>,
) {
    let _ = stream.set_nodelay(true);
    if tls {
        let acceptor = shared.tls.clone();
        let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
        let stream = tokio::select! {
            _ = epoch.changed() => return,
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            },
        };
        serve(shared, stream, true, epoch).await;
    } else {
        serve(shared, stream, false, epoch).await;
    }
}

async fn serve<S>(shared: Arc<Shared>, stream: S, tls: bool, mut epoch: watch::Receiver<u64>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handler::handle(shared, req, tls).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        r = conn => {
            if let Err(error) = r {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        // Restart or shutdown: drop the connection (and every response streaming on it).
        _ = epoch.changed() => {}
    }
}

// === impl Shared ===

impl Shared {
    /// Closes every connection and listener, waits `down`, and listens again on the same
    /// addresses. The store and its resourceVersion are kept.
    pub(crate) async fn restart(self: &Arc<Self>, down: Duration) -> io::Result<()> {
        let _one_at_a_time = self.restart_lock.lock().await;
        if self.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        RequestLog::bump(&self.log.restarts);
        self.epoch.send_modify(|e| *e += 1);
        tokio::time::sleep(down).await;
        if self.stopped.load(Ordering::SeqCst) {
            return Ok(());
        }
        let addrs: Vec<(SocketAddr, bool)> = self
            .http_addrs
            .iter()
            .map(|a| (*a, false))
            .chain(self.https_addrs.iter().map(|a| (*a, true)))
            .collect();
        for (addr, tls) in addrs {
            let mut tries = 0;
            let listener = loop {
                match std_bind(addr) {
                    Ok(l) => break l,
                    Err(StartError::Bind { source, .. }) if tries < 50 => {
                        tracing::debug!(%addr, error = %source, "rebind failed, retrying");
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(StartError::Bind { source, .. }) => return Err(source),
                    Err(other) => return Err(io::Error::other(other.to_string())),
                }
            };
            tokio::spawn(accept_loop(self.clone(), listener, tls));
        }
        Ok(())
    }

    /// Closes everything for good.
    pub(crate) fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }
}
