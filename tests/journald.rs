//! Logging under systemd: with `JOURNAL_STREAM` naming our stderr, `ferrolb run` logs to the
//! journal's native socket with every event field as its own journal field; with a
//! `JOURNAL_STREAM` that is not our stderr (inherited by a child), it logs readable text to
//! stderr instead.
//!
//! The journal socket is a test socket: the daemon runs in a private mount namespace
//! (`unshare -m`) where a tmpfs covers `/run` (the host need not have `/run/systemd`) and our
//! directory is bound on `/run/systemd/journal`, so nothing of the host's journal is touched.
//! Needs root and `unshare` (util-linux).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");

/// A journald native-protocol datagram as fields: `KEY=value` lines, or `KEY\n`, a
/// little-endian u64 length, the value and `\n` for values holding newlines.
fn parse(mut data: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while !data.is_empty() {
        let end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        let line = &data[..end];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = &data[(end + 1).min(data.len())..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            fields.insert(key, value);
            data = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    fields
}

struct Run {
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ferrolb run` against an API server that is not there (it logs its connection
/// attempts and list failures, with fields) with stderr in a file; `journal_stream`
/// computes `JOURNAL_STREAM` from that file's device and inode.
fn start(journal_stream: impl Fn(u64, u64) -> String) -> (Run, UnixDatagram) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n\
         users:\n- name: u\n  user: {token: abc}\n",
    )
    .unwrap();
    let config = dir.path().join("ferrolb.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"jn1\"\n[kubernetes]\nkubeconfig = \"{}\"\n[cluster]\nenabled = false\n\
             [metrics]\nlisten = \"\"\n[[pool]]\nname = \"p\"\nmode = \"l2\"\naddresses = [\"10.96.0.0/28\"]\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    let socket = UnixDatagram::bind(journal_dir.join("socket")).expect("bind the journal socket");
    let stderr_path = dir.path().join("stderr");
    let stderr = File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let script = format!(
        "mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal \
         && mount --bind {} /run/systemd/journal && exec \"$@\"",
        journal_dir.display()
    );
    let child = Command::new("unshare")
        .args(["-m", "sh", "-c", &script, "sh", FERROLB, "run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", journal_stream(meta.dev(), meta.ino()))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("unshare (util-linux) must be installed");
    (Run { dir, child }, socket)
}

/// Datagrams received until `done` holds of them or 20 s pass.
fn receive(
    socket: &UnixDatagram,
    done: impl Fn(&[BTreeMap<String, String>]) -> bool,
) -> Vec<BTreeMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while Instant::now() < deadline && !done(&got) {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(parse(&buf[..n]));
        }
    }
    got
}

fn stderr_text(run: &Run) -> String {
    std::fs::read_to_string(run.dir.path().join("stderr")).unwrap_or_default()
}

#[test]
fn under_systemd_events_reach_the_journal_with_their_fields() {
    let (run, socket) = start(|dev, ino| format!("{dev}:{ino}"));
    let is_connect = |f: &BTreeMap<String, String>| {
        f.get("MESSAGE")
            .is_some_and(|m| m.contains("connecting to the Kubernetes API"))
    };
    let is_list_failure =
        |f: &BTreeMap<String, String>| f.get("MESSAGE").is_some_and(|m| m.contains("list failed"));
    let got = receive(&socket, |g| {
        g.iter().any(is_connect) && g.iter().any(is_list_failure)
    });
    let connect = got.iter().find(|f| is_connect(f)).unwrap_or_else(|| {
        panic!(
            "no connect event in the journal; got {got:#?}\nstderr: {}",
            stderr_text(&run)
        )
    });
    // Structured fields, upper-cased, no prefix; INFO is journald's NOTICE (5).
    assert_eq!(
        connect.get("NODE").map(String::as_str),
        Some("jn1"),
        "{connect:#?}"
    );
    assert_eq!(
        connect.get("SERVER").map(String::as_str),
        Some("http://127.0.0.1:9/"),
        "{connect:#?}"
    );
    assert_eq!(
        connect.get("PRIORITY").map(String::as_str),
        Some("5"),
        "{connect:#?}"
    );
    assert_eq!(
        connect.get("TARGET").map(String::as_str),
        Some("ferrolb::daemon"),
        "{connect:#?}"
    );
    assert!(
        connect.contains_key("CODE_FILE") && connect.contains_key("CODE_LINE"),
        "{connect:#?}"
    );
    assert_eq!(
        connect.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("ferrolb"),
        "{connect:#?}"
    );
    // A WARN (4) with its own fields.
    let failure = got
        .iter()
        .find(|f| is_list_failure(f))
        .expect("a list failure");
    assert_eq!(
        failure.get("PRIORITY").map(String::as_str),
        Some("4"),
        "{failure:#?}"
    );
    assert!(
        failure.contains_key("KIND") && failure.contains_key("RETRY_IN"),
        "{failure:#?}"
    );
    // Nothing went to stderr as text meanwhile.
    let text = stderr_text(&run);
    assert!(
        !text.contains("connecting to the Kubernetes API"),
        "also on stderr: {text}"
    );
}

#[test]
fn an_inherited_journal_stream_that_is_not_our_stderr_means_stderr_text() {
    let (run, socket) = start(|dev, ino| format!("{dev}:{}", ino + 1));
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !stderr_text(&run).contains("connecting to the Kubernetes API")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = stderr_text(&run);
    assert!(
        text.contains("connecting to the Kubernetes API") && text.contains("node=jn1"),
        "{text}"
    );
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        socket.recv(&mut buf).is_err(),
        "a datagram reached the journal socket"
    );
}
