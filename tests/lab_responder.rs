//! `ferrolb lab responder`, the real binary, on loopback: what it prints when listening, what a
//! client gets over HTTP and raw TCP on both families, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");

/// Kills the responder even when an assertion fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exchange(addr: SocketAddr, send: &[u8]) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream.write_all(send).expect("write");
    let mut got = String::new();
    stream.read_to_string(&mut got).expect("read");
    got
}

#[test]
fn the_binary_answers_with_its_name_and_stops_on_sigterm() {
    let mut child = Command::new(FERROLB)
        .args([
            "lab",
            "responder",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
        ])
        .args(["--name", "node2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ferrolb lab responder");
    let stdout = child.stdout.take().expect("stdout");
    let mut guard = Guard(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("stdout");
        let addr = line
            .strip_prefix("ferrolb lab responder: node2 listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        addrs.push(addr.parse().expect("an address"));
    }
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    for addr in &addrs {
        let http = exchange(*addr, b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n");
        assert!(http.starts_with("HTTP/1.1 200 OK\r\n"), "{addr}: {http:?}");
        assert!(http.contains("Content-Length: 6\r\n"), "{addr}: {http:?}");
        assert!(http.ends_with("\r\n\r\nnode2\n"), "{addr}: {http:?}");
        assert_eq!(exchange(*addr, b""), "node2\n", "{addr}: raw TCP");
    }
    let status = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = guard.0.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn a_missing_listen_address_or_a_taken_one_fails() {
    let out = Command::new(FERROLB)
        .args(["lab", "responder", "--name", "x"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("local address").to_string();
    let out = Command::new(FERROLB)
        .args(["lab", "responder", "--listen", &addr, "--name", "x"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
