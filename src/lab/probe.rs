//! The client's view during the demo: TCP connections to a Service address from inside the
//! client namespace, every 10 ms, each answered (or not) with the name of the node whose
//! responder took it.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::error::LabError;

/// One probe: when it was sent (since the start of the window) and who answered.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the window began.
    pub at: Duration,
    /// The answering node, or `None` when the connection failed or said nothing in 200 ms.
    pub node: Option<String>,
}

/// Moves the calling thread into network namespace `ns` (`/run/netns/NS`). The one unsafe
/// call of the lab: no safe wrapper of setns(2) is among our dependencies.
#[allow(unsafe_code)]
fn enter(ns: &str) -> Result<(), LabError> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(LabError::file(std::path::Path::new(&path)))?;
    // SAFETY: setns on a namespace file descriptor we own; it moves only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("setns {path}"),
            detail: std::io::Error::last_os_error().to_string(),
        })
    }
}

fn ask(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    // The responder answers HTTP; a bare request line is enough.
    std::io::Write::write_all(&mut stream, b"GET / HTTP/1.0\r\n\r\n").ok()?;
    // Read until the body (`NAME\n`) is in, the peer closes, or the timeout.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&bytes);
        if text
            .split_once("\r\n\r\n")
            .is_some_and(|(_, body)| body.ends_with('\n'))
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let body = text.split_once("\r\n\r\n")?.1.trim();
    (!body.is_empty()).then(|| body.to_string())
}

/// Starts probing `addr` from namespace `ns` every 10 ms for `window`, on a thread of its own;
/// times are measured from `start`.
pub fn spawn(
    ns: &str,
    addr: SocketAddr,
    start: Instant,
    window: Duration,
) -> std::thread::JoinHandle<Result<Vec<Sample>, LabError>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns)?;
        let mut out = Vec::new();
        while start.elapsed() < window {
            let sent = start.elapsed();
            out.push(Sample {
                at: sent,
                node: ask(addr),
            });
            let next = sent + Duration::from_millis(10);
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(out)
    })
}

/// Connections to `addr` from `ns` one after another, `count` of them: who answered each.
pub fn answers(ns: &str, addr: SocketAddr, count: usize) -> Result<Vec<Option<String>>, LabError> {
    let ns = ns.to_string();
    join(std::thread::spawn(move || {
        enter(&ns)?;
        Ok((0..count).map(|_| ask(addr)).collect())
    }))
}

/// The result of a probe thread (a panic in it is an error, not ours).
pub fn join<T>(h: std::thread::JoinHandle<Result<T, LabError>>) -> Result<T, LabError> {
    h.join().unwrap_or_else(|_| {
        Err(LabError::Command {
            command: "probe".into(),
            detail: "the probe thread panicked".into(),
        })
    })
}
