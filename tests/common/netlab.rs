//! A network-namespace lab for end-to-end tests, after netavark's namespace tests: a LAN (a
//! bridge inside its own namespace), hosts plugged into it with veth pairs (one namespace each),
//! processes started inside those namespaces, and a guard that kills every process and deletes
//! every namespace it made — also when an assertion fails half-way.
//!
//! Nothing here touches the host's own network namespace: the bridge lives in `<prefix>-lan`,
//! each veth pair is created there and one end moved into its host's namespace, and every
//! process (simulator, daemons, kubectl, curl) runs under `ip netns exec`.
//!
//! ```ignore
//! let lab = Lab::new("flb-x");                       // bridge namespace flb-x-lan
//! let api_host = lab.host("api", "10.250.9.2/24", None);
//! let n1 = lab.host("n1", "10.250.9.11/24", Some("fd00:250:9::11/64"));
//! let api = lab.apiserver(&api_host, &ApiserverOptions::default());
//! let cfg = lab.ferrolb_config(&NodeConfig::new("n1", &api.kubeconfig)
//!     .pool(PoolConfig::new("default", &["10.250.9.100-10.250.9.199"])));
//! let d1 = lab.start_ferrolb(&n1, &cfg);
//! api.kubectl_ok(&["get", "svc"]);
//! lab.kill(d1.proc);                                  // SIGKILL
//! ```
//!
//! Labs in one test binary run one at a time (a process-wide lock held by each [`Lab`]): the
//! timing-sensitive tests (Lease expiry, backoff) would be noisy on a small machine otherwise.
//! Every lab still gets its own prefix and subnet, so nothing collides if that ever changes.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");
/// The real kubectl (a dispatcher picking its version from the server's `/version`).
pub const KUBECTL: &str = "/usr/bin/kubectl";
/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(50);
/// The bridge inside the LAN namespace.
const BRIDGE: &str = "br0";
/// Longest interface name the kernel takes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

static SERIAL: Mutex<()> = Mutex::new(());

// === helpers ===

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit status 0.
    pub ok: bool,
    /// It was killed at its deadline.
    pub timed_out: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Panics (with both streams) unless it succeeded; returns stdout.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(
            self.ok,
            "{what} failed{}:\nstdout:\n{}\nstderr:\n{}",
            if self.timed_out { " (timed out)" } else { "" },
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// Runs `cmd` to completion, killing it after `timeout`; `stdin` is written and closed first.
pub fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Out {
        ok: status.success() && !timed_out,
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `ip ARGS` (in the host namespace: only `netns` management and `-n NS` commands are
/// used); panics on failure.
fn ip(args: &[&str]) {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_with_timeout(cmd, None, Duration::from_secs(20)).expect_ok(&format!("ip {args:?}"));
}

fn ip_output(args: &[&str]) -> String {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_with_timeout(cmd, None, Duration::from_secs(20)).expect_ok(&format!("ip {args:?}"))
}

/// Panics with a clear message unless this process runs as root (the end-to-end tests create
/// network namespaces; CI runs them as root, so they must not silently pass without it).
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert!(
        euid == "0",
        "these end-to-end tests create network namespaces and need root (effective uid is {euid}); \
         run `cargo test` as root"
    );
}

/// Panics with a clear message unless `program` exists.
pub fn require_program(program: &str) {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).exists())
        })
    };
    assert!(
        found,
        "the end-to-end tests need {program}, which is not installed"
    );
}

/// Polls `f` every [`POLL`] until it returns `Ok`, or panics after `timeout` with `what` and the
/// last `Err` it gave (the state seen, to tell what went wrong).
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if start.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The last `n` lines of a file (for failure reports).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// === impl Lab ===

/// A process the lab started; killed when the lab is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its process id (that of the program itself: `ip netns exec` execs it).
    pub pid: u32,
}

struct Running {
    proc: Proc,
    label: String,
    child: Child,
    log: Option<PathBuf>,
}

/// A namespace on the lab's LAN.
#[derive(Debug, Clone)]
pub struct Host {
    /// The short name given to [`Lab::host`].
    pub name: String,
    /// The network namespace.
    pub ns: String,
    /// Its IPv4 address on the LAN.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address on the LAN, if it has one.
    pub ipv6: Option<Ipv6Addr>,
    /// The bridge-side end of its veth pair (in the LAN namespace).
    pub bridge_port: String,
}

/// The lab: a LAN namespace with a bridge, host namespaces on it, processes inside them.
pub struct Lab {
    prefix: String,
    lan: String,
    dir: Option<tempfile::TempDir>,
    namespaces: Mutex<Vec<String>>,
    children: Mutex<Vec<Running>>,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// A new lab whose namespaces are named `<prefix>-…` (the LAN: `<prefix>-lan`). Namespaces
    /// left over from an earlier run that was killed before it could clean up are removed first.
    pub fn new(prefix: &str) -> Lab {
        require_root();
        require_program("ip");
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        remove_stale(prefix);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .expect("temporary directory");
        let lab = Lab {
            prefix: prefix.to_string(),
            lan: format!("{prefix}-lan"),
            dir: Some(dir),
            namespaces: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            _serial: serial,
        };
        lab.add_namespace(&lab.lan);
        ip(&["-n", &lab.lan, "link", "set", "lo", "up"]);
        ip(&["-n", &lab.lan, "link", "add", BRIDGE, "type", "bridge"]);
        ip(&[
            "-n",
            &lab.lan,
            "link",
            "set",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &lab.lan, "link", "set", BRIDGE, "up"]);
        lab
    }

    fn add_namespace(&self, ns: &str) {
        ip(&["netns", "add", ns]);
        self.namespaces.lock().unwrap().push(ns.to_string());
    }

    /// The lab's scratch directory (configs, logs, kubeconfig, kubectl's cache). Kept, and its
    /// path printed, when a test fails.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("lab directory").path()
    }

    /// A path inside [`Lab::dir`].
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Writes a file in the lab directory with `mode`.
    pub fn write_file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).expect("write file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// The LAN namespace (bridge `br0`).
    pub fn lan(&self) -> &str {
        &self.lan
    }

    /// Adds a host `<prefix>-<name>` on the LAN with `ipv4` (`"10.250.1.11/24"`) and optionally
    /// `ipv6` (`"fd00:250:1::11/64"`, no DAD) on its `eth0`. Sysctls as NETLAB.md advises for
    /// node namespaces: `arp_ignore=1`, `arp_announce=2`, `accept_dad=0`.
    pub fn host(&self, name: &str, ipv4: &str, ipv6: Option<&str>) -> Host {
        let ns = format!("{}-{name}", self.prefix);
        let port = format!("v{name}");
        assert!(
            port.len() <= IFNAME_MAX,
            "host name {name:?} too long for an interface name"
        );
        self.add_namespace(&ns);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        self.sysctl(
            &ns,
            &[
                ("net.ipv6.conf.all.accept_dad", "0"),
                ("net.ipv6.conf.default.accept_dad", "0"),
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.default.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
                ("net.ipv4.conf.default.arp_announce", "2"),
            ],
        );
        ip(&[
            "-n", &self.lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        ip(&[
            "-n", &self.lan, "link", "set", &port, "master", BRIDGE, "up",
        ]);
        ip(&["-n", &ns, "addr", "add", ipv4, "dev", "eth0"]);
        if let Some(v6) = ipv6 {
            ip(&["-n", &ns, "addr", "add", v6, "dev", "eth0", "nodad"]);
        }
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        let addr = |cidr: &str| cidr.split('/').next().unwrap_or(cidr).to_string();
        Host {
            name: name.to_string(),
            ipv4: addr(ipv4).parse().expect("IPv4 address"),
            ipv6: ipv6.map(|v| addr(v).parse().expect("IPv6 address")),
            ns,
            bridge_port: port,
        }
    }

    /// Adds another bridge `name` in the LAN namespace: a second network, not linked to `br0`
    /// (a cluster network for gossip, say).
    pub fn add_bridge(&self, name: &str) {
        ip(&["-n", &self.lan, "link", "add", name, "type", "bridge"]);
        ip(&[
            "-n",
            &self.lan,
            "link",
            "set",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
        ]);
        ip(&["-n", &self.lan, "link", "set", name, "up"]);
    }

    /// Gives `host` a second interface `ifname` with `ipv4` (`"10.251.1.11/24"`) on `bridge`
    /// (made by [`Lab::add_bridge`]); returns the bridge-side port's name (`<prefix letter><host>`),
    /// for [`Lab::port`].
    pub fn attach(&self, host: &Host, bridge: &str, ifname: &str, ipv4: &str) -> String {
        let port = format!("{}{}", &bridge[..1], host.name);
        assert!(
            port.len() <= IFNAME_MAX,
            "host name {:?} too long for an interface name",
            host.name
        );
        ip(&[
            "-n", &self.lan, "link", "add", &port, "type", "veth", "peer", "name", ifname, "netns",
            &host.ns,
        ]);
        ip(&[
            "-n", &self.lan, "link", "set", &port, "master", bridge, "up",
        ]);
        ip(&["-n", &host.ns, "addr", "add", ipv4, "dev", ifname]);
        ip(&["-n", &host.ns, "link", "set", ifname, "up"]);
        port
    }

    /// Sets a bridge-side port (in the LAN namespace) down or up: that host's link on that
    /// network is cut or restored.
    pub fn port(&self, port: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.lan, "link", "set", port, state]);
    }

    /// Sets sysctls inside `ns` (`/proc/sys/net` shows the namespace of the process reading it).
    pub fn sysctl(&self, ns: &str, settings: &[(&str, &str)]) {
        let mut args = vec!["-q", "-w"];
        let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        args.extend(pairs.iter().map(String::as_str));
        self.exec(ns, "sysctl", &args).expect_ok("sysctl");
    }

    /// Runs `program args` inside `ns` to completion (60 s at most).
    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).args(args);
        run_with_timeout(cmd, None, Duration::from_secs(60))
    }

    /// Starts `program args` inside `ns`, stdout and stderr appended to `log`. The process is
    /// killed when the lab is dropped.
    pub fn spawn(&self, ns: &str, program: &str, args: &[&str], log: &Path) -> Proc {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = file.try_clone().expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program])
            .args(args)
            .env("HOME", self.dir())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        self.track(cmd, program, Some(log.to_path_buf())).0
    }

    /// Like [`Lab::spawn`], but hands back the process's stdout (stderr goes to `log`).
    pub fn spawn_piped(
        &self,
        ns: &str,
        program: &str,
        args: &[&str],
        log: &Path,
    ) -> (Proc, ChildStdout) {
        let err = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program])
            .args(args)
            .env("HOME", self.dir())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err);
        let (proc, stdout) = self.track(cmd, program, Some(log.to_path_buf()));
        (proc, stdout.expect("piped stdout"))
    }

    fn track(
        &self,
        mut cmd: Command,
        label: &str,
        log: Option<PathBuf>,
    ) -> (Proc, Option<ChildStdout>) {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take();
        let proc = Proc { pid: child.id() };
        self.children.lock().unwrap().push(Running {
            proc,
            label: label.to_string(),
            child,
            log,
        });
        (proc, stdout)
    }

    /// `None` while `p` runs, else how it ended.
    pub fn exit_status(&self, p: Proc) -> Option<ExitStatus> {
        let mut children = self.children.lock().unwrap();
        let r = children
            .iter_mut()
            .find(|r| r.proc == p)
            .expect("a process of this lab");
        r.child.try_wait().expect("try_wait")
    }

    /// Whether `p` is still running.
    pub fn running(&self, p: Proc) -> bool {
        self.exit_status(p).is_none()
    }

    /// kill -9: SIGKILL, then reaps it.
    pub fn kill(&self, p: Proc) {
        let mut children = self.children.lock().unwrap();
        let r = children
            .iter_mut()
            .find(|r| r.proc == p)
            .expect("a process of this lab");
        let _ = r.child.kill();
        let _ = r.child.wait();
    }

    /// Sends `signal` (`"TERM"`, `"STOP"`, `"CONT"`, …) to `p`.
    pub fn signal(&self, p: Proc, signal: &str) {
        assert!(self.running(p), "process {} is not running", p.pid);
        let mut cmd = Command::new("kill");
        cmd.arg(format!("-{signal}")).arg(p.pid.to_string());
        run_with_timeout(cmd, None, Duration::from_secs(5)).expect_ok("kill");
    }

    /// SIGTERM, then waits up to `timeout` for it to exit (SIGKILL and panic if it does not).
    pub fn terminate(&self, p: Proc, timeout: Duration) -> ExitStatus {
        self.signal(p, "TERM");
        self.wait_exit(p, timeout)
    }

    /// Waits up to `timeout` for `p` to exit (SIGKILL and panic if it does not).
    pub fn wait_exit(&self, p: Proc, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status(p) {
                return status;
            }
            if start.elapsed() > timeout {
                self.kill(p);
                panic!("process {} did not exit within {timeout:?}", p.pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Pulls (`up = false`) or plugs back in a host's cable: its bridge-side veth goes down/up.
    pub fn cable(&self, host: &Host, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.lan, "link", "set", &host.bridge_port, state]);
    }

    /// Writes a node's `ferrolb.toml` (named after the node) and checks it with `ferrolb
    /// check-config`: it must be valid and draw no warning about the kubeconfig (whose mode
    /// must keep others out).
    pub fn ferrolb_config(&self, config: &NodeConfig) -> PathBuf {
        let mode = fs::metadata(&config.kubeconfig)
            .expect("the kubeconfig exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "the kubeconfig {} has mode {mode:04o}; it must be 0600",
            config.kubeconfig.display()
        );
        let path = self.write_file(&format!("{}.toml", config.node), &config.render(), 0o600);
        let mut cmd = Command::new(FERROLB);
        cmd.arg("check-config").arg("--config").arg(&path);
        let out = run_with_timeout(cmd, None, Duration::from_secs(20));
        let summary = out.clone().expect_ok("ferrolb check-config");
        assert!(
            !out.stderr.contains("kubeconfig"),
            "check-config warns about the kubeconfig:\n{}",
            out.stderr
        );
        assert!(
            summary.contains(&format!("node {}", config.node)),
            "{summary}"
        );
        path
    }

    /// Starts `ferrolb run --config CONFIG` in `host`'s namespace and waits for its initial
    /// sync (the log line `initial sync complete`). Each start logs to its own file.
    pub fn start_ferrolb(&self, host: &Host, config: &Path) -> Daemon {
        let n = (1..)
            .find(|n| {
                !self
                    .path(&format!("ferrolb-{}.{n}.log", host.name))
                    .exists()
            })
            .expect("a free log name");
        let log = self.path(&format!("ferrolb-{}.{n}.log", host.name));
        let config_arg = config.to_string_lossy().into_owned();
        let proc = self.spawn(&host.ns, FERROLB, &["run", "--config", &config_arg], &log);
        let daemon = Daemon {
            proc,
            node: host.name.clone(),
            log,
        };
        self.wait_for_log(&daemon, "initial sync complete", Duration::from_secs(30));
        daemon
    }

    /// Waits until `daemon`'s log holds `needle`; panics (with the log) if the daemon exits
    /// first or `timeout` passes.
    pub fn wait_for_log(&self, daemon: &Daemon, needle: &str, timeout: Duration) {
        wait_for(
            &format!("{needle:?} in {}", daemon.log.display()),
            timeout,
            || {
                if daemon.log_text().contains(needle) {
                    return Ok(());
                }
                if let Some(status) = self.exit_status(daemon.proc) {
                    panic!(
                        "ferrolb on {} exited ({status}) before logging {needle:?}:\n{}",
                        daemon.node,
                        tail(&daemon.log, 40)
                    );
                }
                Err(tail(&daemon.log, 3))
            },
        );
    }

    /// Starts the Kubernetes API simulator (`ferrolb lab apiserver`) in `host`'s namespace,
    /// listening on its IPv4 address, port 6443 (HTTPS only, with a bearer token), and waits
    /// until it answers.
    pub fn apiserver(&self, host: &Host, options: &ApiserverOptions) -> Api {
        require_program(KUBECTL);
        require_program("curl");
        let kubeconfig = self.path("kubeconfig");
        let ca = self.path("apiserver-ca.pem");
        let listen = format!("{}:6443", host.ipv4);
        let bookmark = format!("{}ms", options.bookmark_interval.as_millis());
        let history = options.history.to_string();
        let mut args: Vec<&str> = vec![
            "lab",
            "apiserver",
            "--https-listen",
            &listen,
            "--token",
            &options.token,
            "--bookmark-interval",
            &bookmark,
            "--history",
            &history,
        ];
        let kc = kubeconfig.to_string_lossy().into_owned();
        let ca_arg = ca.to_string_lossy().into_owned();
        args.extend(["--write-kubeconfig", &kc, "--write-ca", &ca_arg]);
        let log = self.path("apiserver.log");
        let proc = self.spawn(&host.ns, FERROLB, &args, &log);
        let api = Api {
            ns: host.ns.clone(),
            url: format!("https://{listen}"),
            kubeconfig,
            ca,
            token: options.token.clone(),
            home: self.dir().to_path_buf(),
            proc,
            log,
        };
        wait_for(
            "the API simulator to answer",
            Duration::from_secs(20),
            || {
                if !self.running(proc) {
                    panic!("the API simulator exited:\n{}", tail(&api.log, 20));
                }
                if !api.ca.exists() {
                    return Err("no CA written yet".into());
                }
                api.try_sim("GET", "/_sim/counters").map(drop)
            },
        );
        api
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        let mut children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| p.into_inner()));
        for r in &mut children {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        let namespaces =
            std::mem::take(&mut *self.namespaces.lock().unwrap_or_else(|p| p.into_inner()));
        // Anything our children started in our namespaces (kubectl's own children, say).
        for ns in &namespaces {
            kill_namespace_pids(ns);
        }
        for ns in namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if failed {
            let mut report = String::new();
            for r in &children {
                if let Some(log) = &r.log {
                    let _ = writeln!(
                        report,
                        "--- {} (pid {}): {} ---\n{}",
                        r.label,
                        r.proc.pid,
                        log.display(),
                        tail(log, 25)
                    );
                }
            }
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                let _ = writeln!(report, "lab directory kept: {}", kept.display());
            }
            eprintln!("{report}");
        }
    }
}

fn kill_namespace_pids(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// Removes namespaces named `<prefix>-…` left over from an earlier run of the same test that
/// was killed before its guard ran (their processes were that run's; they are killed first).
fn remove_stale(prefix: &str) {
    let list = ip_output(&["netns", "list"]);
    let own = format!("{prefix}-");
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&own) {
            eprintln!("removing the stale namespace {name} of an earlier run");
            kill_namespace_pids(name);
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

// === impl Daemon ===

/// A running `ferrolb run`.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The process.
    pub proc: Proc,
    /// Its node (host) name.
    pub node: String,
    /// Its log.
    pub log: PathBuf,
}

impl Daemon {
    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

// === ferrolb.toml ===

/// One `[[pool]]`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Its name.
    pub name: String,
    /// Ranges, CIDRs or addresses.
    pub addresses: Vec<String>,
    /// `auto_assign`.
    pub auto_assign: bool,
    /// `avoid_buggy_ips`.
    pub avoid_buggy_ips: bool,
    /// `None`: an l2 pool; `Some(keys)`: a bgp pool with these `[pool.bgp]` keys (TOML).
    pub bgp: Option<String>,
}

impl PoolConfig {
    /// An `l2` pool with `auto_assign = true`.
    pub fn new(name: &str, addresses: &[&str]) -> PoolConfig {
        PoolConfig {
            name: name.into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            bgp: None,
        }
    }

    /// A bgp pool with these `[pool.bgp]` keys (TOML lines; may be empty).
    pub fn bgp(mut self, keys: &str) -> PoolConfig {
        self.bgp = Some(keys.into());
        self
    }

    /// `auto_assign = false`: only Services that ask for this pool (or its addresses) get
    /// addresses from it.
    pub fn manual(mut self) -> PoolConfig {
        self.auto_assign = false;
        self
    }
}

/// A node's ferrolb.toml for the lab: gossip and metrics off (unless set), the lab's kubeconfig, short
/// Lease timings (4 s / 3 s / 1 s) so handovers happen within a test's patience.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `[node] name`.
    pub node: String,
    /// `[kubernetes] kubeconfig`.
    pub kubeconfig: PathBuf,
    /// `[[pool]]`s.
    pub pools: Vec<PoolConfig>,
    /// `lease_duration`, `renew_deadline`, `retry_period`.
    pub lease: (Duration, Duration, Duration),
    /// More `[kubernetes]` keys, as TOML (`key = value` lines).
    pub kubernetes_extra: String,
    /// `[log] level`.
    pub log_level: String,
    /// The `[cluster]` section's keys, as TOML (`enabled = false` by default: no gossip).
    pub cluster: String,
    /// The `[l2]` section's keys, as TOML (empty by default: no `[l2]` section).
    pub l2: String,
    /// `[metrics] listen` (empty by default: off).
    pub metrics_listen: String,
    /// `[[bgp.peer]]` tables, each as its keys (TOML lines).
    pub bgp_peers: Vec<String>,
}

impl NodeConfig {
    /// The lab defaults for node `node`.
    pub fn new(node: &str, kubeconfig: &Path) -> NodeConfig {
        NodeConfig {
            node: node.into(),
            kubeconfig: kubeconfig.to_path_buf(),
            pools: Vec::new(),
            lease: (
                Duration::from_secs(4),
                Duration::from_secs(3),
                Duration::from_secs(1),
            ),
            kubernetes_extra: String::new(),
            log_level: "info".into(),
            cluster: "enabled = false\n".into(),
            l2: String::new(),
            metrics_listen: String::new(),
            bgp_peers: Vec::new(),
        }
    }

    /// Adds a pool.
    pub fn pool(mut self, pool: PoolConfig) -> NodeConfig {
        self.pools.push(pool);
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let d = |d: Duration| q(&format!("{}ms", d.as_millis()));
        let mut t = String::new();
        let _ = writeln!(
            t,
            "# written by the end-to-end tests\n[node]\nname = {}\n",
            q(&self.node)
        );
        let _ = writeln!(
            t,
            "[kubernetes]\nkubeconfig = {}\nlease_duration = {}\nrenew_deadline = {}\nretry_period = {}\n{}",
            q(&self.kubeconfig.to_string_lossy()),
            d(self.lease.0),
            d(self.lease.1),
            d(self.lease.2),
            self.kubernetes_extra
        );
        let _ = writeln!(
            t,
            "[cluster]\n{}\n[metrics]\nlisten = {}\n",
            self.cluster,
            q(&self.metrics_listen)
        );
        let _ = writeln!(t, "[log]\nlevel = {}\n", q(&self.log_level));
        if !self.l2.is_empty() {
            let _ = writeln!(t, "[l2]\n{}\n", self.l2);
        }
        for p in &self.pools {
            let addresses: Vec<String> = p.addresses.iter().map(|a| q(a)).collect();
            let _ = writeln!(
                t,
                "[[pool]]\nname = {}\nmode = {}\naddresses = [{}]\nauto_assign = {}\navoid_buggy_ips = {}\n",
                q(&p.name),
                q(if p.bgp.is_some() { "bgp" } else { "l2" }),
                addresses.join(", "),
                p.auto_assign,
                p.avoid_buggy_ips
            );
            if let Some(keys) = &p.bgp {
                let _ = writeln!(t, "[pool.bgp]\n{keys}\n");
            }
        }
        for peer in &self.bgp_peers {
            let _ = writeln!(t, "[[bgp.peer]]\n{peer}\n");
        }
        t
    }
}

// === the API simulator ===

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct ApiserverOptions {
    /// The bearer token.
    pub token: String,
    /// `--bookmark-interval`.
    pub bookmark_interval: Duration,
    /// `--history` (changes kept for resuming watches).
    pub history: usize,
}

impl Default for ApiserverOptions {
    fn default() -> Self {
        ApiserverOptions {
            token: "e2e-token-5f3a9c".into(),
            bookmark_interval: Duration::from_secs(1),
            history: 1000,
        }
    }
}

/// The simulator running in a lab namespace, with kubectl and `/_sim/…` access from inside
/// that namespace (so test traffic stays in the lab).
#[derive(Debug, Clone)]
pub struct Api {
    /// The namespace it runs in (kubectl and curl run there too).
    pub ns: String,
    /// `https://IP:6443`.
    pub url: String,
    /// The kubeconfig it wrote (mode 0600).
    pub kubeconfig: PathBuf,
    /// Its CA certificate.
    pub ca: PathBuf,
    /// The bearer token.
    pub token: String,
    /// HOME for kubectl (its cache lives there).
    pub home: PathBuf,
    /// The simulator process.
    pub proc: Proc,
    /// Its log.
    pub log: PathBuf,
}

impl Api {
    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, KUBECTL])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("kube-cache"))
            .arg("--request-timeout=20s")
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG");
        cmd
    }

    /// Runs kubectl (in the simulator's namespace) with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Out {
        run_with_timeout(self.kubectl_command(args), None, Duration::from_secs(60))
    }

    /// Runs kubectl with `stdin`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Out {
        run_with_timeout(
            self.kubectl_command(args),
            Some(stdin.as_bytes()),
            Duration::from_secs(60),
        )
    }

    /// Runs kubectl; panics unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl(args).expect_ok(&format!("kubectl {args:?}"))
    }

    /// Runs kubectl with `-o json` appended and parses the answer.
    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.kubectl_ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {all:?}: {e}:\n{text}"))
    }

    /// Starts `kubectl ARGS` in the background (e.g. `get svc -w -o json`); stdout is handed
    /// back, stderr goes to `log`. Killed with the lab.
    pub fn kubectl_background(&self, lab: &Lab, args: &[&str], log: &Path) -> (Proc, ChildStdout) {
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let cache = self.home.join("kube-cache").to_string_lossy().into_owned();
        let mut all = vec!["--kubeconfig", &kubeconfig, "--cache-dir", &cache];
        all.extend(args);
        lab.spawn_piped(&self.ns, KUBECTL, &all, log)
    }

    /// Calls the simulator's own endpoint `/_sim{path}` (over HTTPS, with the token, from inside
    /// its namespace).
    pub fn try_sim(&self, method: &str, path: &str) -> Result<Value, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "curl", "-sS", "--max-time", "20"])
            .arg("--cacert")
            .arg(&self.ca)
            .args(["-H", &format!("Authorization: Bearer {}", self.token)])
            .args(["-X", method, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.url));
        let out = run_with_timeout(cmd, None, Duration::from_secs(30));
        if !out.ok {
            return Err(format!("curl {method} {path}: {}", out.stderr.trim()));
        }
        let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
        if code.trim() != "200" {
            return Err(format!("{method} {path}: HTTP {code}: {body}"));
        }
        serde_json::from_str(body).map_err(|e| format!("{method} {path}: {e}: {body}"))
    }

    /// [`Api::try_sim`], panicking on failure.
    pub fn sim(&self, method: &str, path: &str) -> Value {
        self.try_sim(method, path)
            .unwrap_or_else(|e| panic!("simulator control failed: {e}"))
    }

    /// Every request the simulator logged, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        let v = self.sim("GET", "/_sim/requests");
        serde_json::from_value(v).expect("request log entries")
    }

    /// The sequence number of the last request logged so far: a mark for
    /// [`Api::requests_after`].
    pub fn mark(&self) -> u64 {
        self.counters()["requests"]
            .as_u64()
            .expect("counters.requests")
    }

    /// The requests logged after `mark`.
    pub fn requests_after(&self, mark: u64) -> Vec<Request> {
        let mut all = self.requests();
        all.retain(|r| r.seq > mark);
        all
    }

    /// The simulator's counters.
    pub fn counters(&self) -> Value {
        self.sim("GET", "/_sim/counters")
    }

    /// The next `count` API requests fail with `code` (500, or 429 with `Retry-After`).
    pub fn fail_next(&self, count: u64, code: u16, retry_after: u64) {
        self.sim(
            "POST",
            &format!("/_sim/faults/fail?count={count}&code={code}&retryAfter={retry_after}"),
        );
    }

    /// Holds every request (and pauses watch streams) for `seconds`.
    pub fn stall(&self, seconds: f64) {
        self.sim("POST", &format!("/_sim/faults/stall?seconds={seconds}"));
    }

    /// The next `count` watches get 410 Expired.
    pub fn expire_watches(&self, count: u64) {
        self.sim(
            "POST",
            &format!("/_sim/faults/expire-watches?count={count}"),
        );
    }

    /// Ends every open watch.
    pub fn drop_watches(&self) {
        self.sim("POST", "/_sim/faults/drop-watches");
    }

    /// Restarts: closes every connection, refuses connections for `down_seconds`, keeps data.
    pub fn restart(&self, down_seconds: f64) {
        self.sim(
            "POST",
            &format!("/_sim/faults/restart?downSeconds={down_seconds}"),
        );
    }

    /// Clears pending faults.
    pub fn clear_faults(&self) {
        self.sim("POST", "/_sim/faults/clear");
    }
}

/// One entry of the simulator's request log.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Order of arrival.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query.
    pub query: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// HTTP status answered.
    pub status: u16,
    /// The simulator's own classification (cross-checked, not trusted, by the RBAC test).
    pub verb: String,
    /// API group.
    pub api_group: String,
    /// Resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl Request {
    /// Whether ferrolb sent it (its user agent is `ferrolb/VERSION`).
    pub fn is_ferrolb(&self) -> bool {
        self.user_agent.starts_with("ferrolb/")
    }
}

/// Parses an address, with or without a prefix length.
pub fn addr(s: &str) -> IpAddr {
    s.split('/')
        .next()
        .unwrap_or(s)
        .parse()
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
}
