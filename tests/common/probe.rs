//! The client's probe, shared by the gossip end-to-end tests and the failover benchmark: a
//! new TCP connection to the Service address every 10 ms, an HTTP request on it (HTTP,
//! because the responder answers a silent connection only after 200 ms), one line per
//! attempt: `<unix time of the attempt's start> <answering node, or - and the error>`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::l2::L2Lab;
use super::netlab::{wait_for, Proc};

const SCRIPT: &str = r#"
import socket, sys, time
address, out = sys.argv[1], open(sys.argv[2], "a", buffering=1)
connect, read = float(sys.argv[3]), float(sys.argv[4])
while True:
    t = time.time()
    try:
        s = socket.create_connection((address, 80), timeout=connect)
        s.settimeout(read)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        lines = data.decode().strip().splitlines()
        who = lines[-1].strip() if data.startswith(b"HTTP/1") and lines else "-"
    except Exception as e:
        who = "-" + type(e).__name__
    out.write(f"{t:.4f} {who}\n")
    time.sleep(max(0.0, 0.01 - (time.time() - t)))
"#;

/// How long one attempt may wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To connect.
    pub connect: Duration,
    /// To read the answer once connected.
    pub read: Duration,
}

impl Timeouts {
    /// For measuring: a failed attempt is short (the LAN answers a handshake in well under a
    /// millisecond and the responder answers at once), so an attempt in flight when the owner
    /// dies blinds the probe for at most ~50 ms.
    pub const SHORT: Timeouts = Timeouts {
        connect: Duration::from_millis(20),
        read: Duration::from_millis(50),
    };
    /// For asserting on a loaded test machine: a slow but successful answer is not lost.
    pub const PATIENT: Timeouts = Timeouts {
        connect: Duration::from_millis(200),
        read: Duration::from_millis(300),
    };
}

/// Wall-clock seconds (the probe's clock: same host, so the same clock).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// One probe loop in the client namespace and its record.
pub struct Probe {
    file: PathBuf,
    /// The python process.
    pub proc: Proc,
}

/// What the client saw after a fault at `t0`.
#[derive(Debug, Clone)]
pub struct Window {
    /// From the fault to the start of the first answered attempt by another node.
    pub outage: Duration,
    /// Longest interval between the starts of consecutive answered attempts (from `t0`).
    pub longest: Duration,
    /// Failed attempts.
    pub lost: usize,
    /// All attempts.
    pub attempts: usize,
    /// The node answering last.
    pub last: Option<String>,
    /// Why the lost attempts failed (`-TimeoutError`, `-ConnectionResetError`, …).
    pub errors: Vec<String>,
}

impl Probe {
    /// Starts a probe of `address` (its record file named `name`).
    pub fn start(l: &L2Lab, address: IpAddr, name: &str, timeouts: Timeouts) -> Probe {
        let file = l.lab.path(&format!("{name}.txt"));
        let log = l.lab.path(&format!("{name}.log"));
        let args = [
            "-c",
            SCRIPT,
            &address.to_string(),
            &file.to_string_lossy(),
            &timeouts.connect.as_secs_f64().to_string(),
            &timeouts.read.as_secs_f64().to_string(),
        ];
        let proc = l.lab.spawn(&l.client.ns, "python3", &args, &log);
        Probe { file, proc }
    }

    /// The raw records of the attempts started in `[since, until)`: (time, node or `-error`).
    fn records(&self, since: f64, until: f64) -> Vec<(f64, String)> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (t, who) = line.split_once(' ')?;
                let t: f64 = t.parse().ok()?;
                (t >= since && t < until).then(|| (t, who.to_string()))
            })
            .collect()
    }

    /// The attempts started in `[since, until)`: (time, answering node or `None`).
    pub fn samples(&self, since: f64, until: f64) -> Vec<(f64, Option<String>)> {
        self.records(since, until)
            .into_iter()
            .map(|(t, who)| (t, (!who.starts_with('-')).then_some(who)))
            .collect()
    }

    /// The node answering the latest answered attempt since `since`.
    pub fn last_answer(&self, since: f64) -> Option<String> {
        self.samples(since, f64::MAX)
            .into_iter()
            .rev()
            .find_map(|(_, w)| w)
    }

    /// Waits until an attempt started after `since` is answered by a node other than `not`.
    pub fn wait_answer(&self, since: f64, not: Option<&str>, timeout: Duration) -> String {
        wait_for(
            &format!("an answer from a node other than {not:?}"),
            timeout,
            || {
                let s = self.samples(since, f64::MAX);
                s.iter()
                    .filter_map(|(_, who)| who.clone())
                    .find(|who| Some(who.as_str()) != not)
                    .ok_or_else(|| format!("{} samples, last {:?}", s.len(), s.last()))
            },
        )
    }

    /// The error kinds of the failed attempts started in `[since, until)`.
    pub fn errors(&self, since: f64, until: f64) -> Vec<String> {
        self.records(since, until)
            .into_iter()
            .filter_map(|(_, who)| who.starts_with('-').then_some(who))
            .collect()
    }

    /// The client's view of `[t0, until)` after a fault on node `from` at `t0`.
    pub fn window(&self, t0: f64, until: f64, from: &str) -> Window {
        let s = self.samples(t0, until);
        let first_other = s
            .iter()
            .find(|(_, w)| w.as_deref().is_some_and(|w| w != from))
            .map(|(t, _)| *t)
            .unwrap_or(until);
        let mut last = t0;
        let mut longest: f64 = 0.0;
        for (t, who) in &s {
            if who.is_some() {
                longest = longest.max(t - last);
                last = *t;
            }
        }
        Window {
            outage: Duration::from_secs_f64((first_other - t0).max(0.0)),
            longest: Duration::from_secs_f64(longest),
            lost: s.iter().filter(|(_, w)| w.is_none()).count(),
            attempts: s.len(),
            last: s.iter().rev().find_map(|(_, w)| w.clone()),
            errors: self.errors(t0, until),
        }
    }
}
