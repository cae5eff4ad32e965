//! `ferrolb lab responder`: a stand-in for kube-proxy and a pod behind a Service, for lab nodes.
//!
//! It listens on TCP addresses and answers every connection with its name, so a client can tell
//! which node a Service address led to:
//!
//! - an HTTP/1 request (`curl http://ADDR/`) gets `200 OK` with the body `NAME\n`, then the
//!   connection closes;
//! - a raw TCP connection that sends nothing HTTP-like (or nothing at all within
//!   [`RAW_GRACE`]) gets `NAME\n`, then the connection closes.
//!
//! ```text
//! ferrolb lab responder --listen 0.0.0.0:80 --listen [::]:80 --name node1
//! ```
//!
//! An IPv6 listen address takes IPv6 only (`IPV6_V6ONLY`), so `0.0.0.0:80` and `[::]:80` can be
//! given together whatever the host's `net.ipv6.bindv6only`.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a connection may stay silent before it is taken for a raw TCP client and gets the
/// bare name.
pub const RAW_GRACE: Duration = Duration::from_millis(200);
/// The longest any one connection is served (a stuck client cannot hold a task for ever).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The most request-head bytes read; a longer head is answered from what arrived.
const MAX_HEAD: usize = 16 * 1024;
/// Pause after a failed `accept` (out of file descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Arguments of `ferrolb lab responder`.
#[derive(Debug, Clone, Args)]
pub struct ResponderArgs {
    /// TCP address to listen on (repeatable), e.g. 0.0.0.0:80 or [::]:80.
    #[arg(long = "listen", value_name = "ADDR:PORT", required = true)]
    pub listen: Vec<SocketAddr>,
    /// The name every answer carries (the node's name).
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

/// Why the responder could not start.
#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The name cannot be sent on one line.
    #[error("the name {0:?} must be non-empty and hold no line break")]
    BadName(String),
}

/// A running responder; its listeners close when it is dropped.
#[derive(Debug)]
pub struct Responder {
    local: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Responder {
    /// Listens on every address of `listen` (port 0 picks a free port; see
    /// [`Responder::local_addrs`]) and answers with `name`.
    pub async fn start(listen: &[SocketAddr], name: &str) -> Result<Responder, ResponderError> {
        if name.is_empty() || name.contains(['\r', '\n']) {
            return Err(ResponderError::BadName(name.to_string()));
        }
        let name: Arc<str> = Arc::from(format!("{name}\n"));
        let mut listeners = Vec::with_capacity(listen.len());
        for addr in listen {
            let listener = bind(*addr).map_err(|source| ResponderError::Listen {
                addr: *addr,
                source,
            })?;
            let local = listener
                .local_addr()
                .map_err(|source| ResponderError::Listen {
                    addr: *addr,
                    source,
                })?;
            listeners.push((listener, local));
        }
        let local = listeners.iter().map(|(_, a)| *a).collect();
        let tasks = listeners
            .into_iter()
            .map(|(listener, addr)| tokio::spawn(accept_loop(listener, addr, name.clone())))
            .collect();
        Ok(Responder { local, tasks })
    }

    /// The addresses actually listened on, in the order given.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A listening socket for `addr`; IPv6 only for an IPv6 address.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A restarted responder must not wait for the old connections' TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, addr: SocketAddr, name: Arc<str>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let name = name.clone();
                tokio::spawn(async move {
                    // A client that goes away half-way is its own business.
                    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, serve(stream, &name)).await;
                });
            }
            Err(error) => {
                tracing::warn!(%addr, %error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// What a client sent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// An HTTP/1 request; `head` is true for method HEAD (no body in the answer).
    Http { head: bool },
    /// Anything else, or nothing.
    Raw,
}

async fn serve(mut stream: TcpStream, name: &str) -> io::Result<()> {
    let request = read_request(&mut stream).await?;
    let answer = answer(request, name);
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until a complete request head, end of stream, [`MAX_HEAD`] bytes, or [`RAW_GRACE`] of
/// silence, and classifies what arrived.
async fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if head_complete(&buf) || buf.len() >= MAX_HEAD {
            break;
        }
        match tokio::time::timeout(RAW_GRACE, stream.read(&mut chunk)).await {
            Err(_) | Ok(Ok(0)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(classify(&buf))
}

fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

/// An HTTP/1 request line: `METHOD SP TARGET SP HTTP/1.x`.
fn classify(buf: &[u8]) -> Request {
    let line_end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Raw;
    };
    let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if token && !target.is_empty() && version.starts_with("HTTP/1.") {
        Request::Http {
            head: method == "HEAD",
        }
    } else {
        Request::Raw
    }
}

/// The bytes sent back; `name` ends with a newline.
fn answer(request: Request, name: &str) -> String {
    match request {
        Request::Raw => name.to_string(),
        Request::Http { head } => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{}",
            name.len(),
            if head { "" } else { name }
        ),
    }
}

/// Runs the responder in the foreground; exit code 0 after SIGINT/SIGTERM.
pub fn run_cli(args: ResponderArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrolb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let responder = match Responder::start(&args.listen, &args.name).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ferrolb lab responder: {e}");
                return ExitCode::FAILURE;
            }
        };
        for addr in responder.local_addrs() {
            println!("ferrolb lab responder: {} listening on {addr}", args.name);
        }
        wait_for_signal().await;
        drop(responder);
        ExitCode::SUCCESS
    })
}

/// SIGINT or SIGTERM (SIGINT only if the SIGTERM handler cannot be installed).
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_http_requests_and_anything_else() {
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Http { head: false }
        );
        assert_eq!(
            classify(b"HEAD /x HTTP/1.0\r\n\r\n"),
            Request::Http { head: true }
        );
        assert_eq!(classify(b""), Request::Raw);
        assert_eq!(classify(b"hello\n"), Request::Raw);
        assert_eq!(classify(b"get / HTTP/1.1\r\n\r\n"), Request::Raw);
        assert_eq!(classify(b"GET / HTTP/2\r\n\r\n"), Request::Raw);
        assert_eq!(classify(b"GET  HTTP/1.1\r\n\r\n"), Request::Raw);
    }

    #[test]
    fn answers_carry_the_name() {
        assert_eq!(answer(Request::Raw, "node1\n"), "node1\n");
        let http = answer(Request::Http { head: false }, "node1\n");
        assert!(http.starts_with("HTTP/1.1 200 OK\r\n"), "{http}");
        assert!(http.contains("Content-Length: 6\r\n"), "{http}");
        assert!(http.ends_with("\r\n\r\nnode1\n"), "{http}");
        let head = answer(Request::Http { head: true }, "node1\n");
        assert!(head.contains("Content-Length: 6\r\n") && head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn head_completion() {
        assert!(head_complete(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.0\n\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }

    #[tokio::test]
    async fn refuses_an_empty_or_multiline_name() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(matches!(
            Responder::start(&[any], "").await,
            Err(ResponderError::BadName(_))
        ));
        assert!(matches!(
            Responder::start(&[any], "a\nb").await,
            Err(ResponderError::BadName(_))
        ));
    }

    async fn exchange(addr: SocketAddr, send: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(send).await.unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn answers_http_and_raw_connections_on_both_families() {
        let listen: Vec<SocketAddr> =
            vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
        let responder = Responder::start(&listen, "node7").await.unwrap();
        for addr in responder.local_addrs() {
            assert_ne!(addr.port(), 0);
            let http = exchange(*addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
            assert!(http.starts_with("HTTP/1.1 200 OK\r\n"), "{addr}: {http:?}");
            assert!(http.ends_with("\r\n\r\nnode7\n"), "{addr}: {http:?}");
            // A request head split across writes is still one request.
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"GET / HT").await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            stream.write_all(b"TP/1.0\r\n\r\n").await.unwrap();
            let mut got = String::new();
            stream.read_to_string(&mut got).await.unwrap();
            assert!(
                got.starts_with("HTTP/1.1 200 OK") && got.ends_with("node7\n"),
                "{got:?}"
            );
            // Silence, or something that is not HTTP: the bare name.
            assert_eq!(exchange(*addr, b"").await, "node7\n");
            assert_eq!(exchange(*addr, b"who are you?\n\n").await, "node7\n");
        }
    }

    #[tokio::test]
    async fn a_busy_address_is_an_error_naming_it() {
        let first = Responder::start(&["127.0.0.1:0".parse().unwrap()], "a")
            .await
            .unwrap();
        let taken = first.local_addrs()[0];
        match Responder::start(&[taken], "b").await {
            Err(ResponderError::Listen { addr, .. }) => assert_eq!(addr, taken),
            other => panic!("expected a listen error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn dropping_it_closes_the_listeners() {
        let responder = Responder::start(&["127.0.0.1:0".parse().unwrap()], "a")
            .await
            .unwrap();
        let addr = responder.local_addrs()[0];
        drop(responder);
        // The accept task ends at its next poll; give the runtime a turn.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
