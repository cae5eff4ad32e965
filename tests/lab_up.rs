//! `ferrolb lab up` end to end, as a user runs it: refused when not root; as root: up → `lab kubectl apply -f` of
//! MetalLB's classic nginx example → the Service gets an address (and a dual-stack one, applied
//! on stdin, an IPv6 address the client reaches too) → the client reaches a
//! node's responder → `lab fail` of the node answering → another node answers → `lab heal` →
//! a second `lab up` is refused → `lab down` → the machine is as it was (no `ferrolb-*`
//! namespace, the host's links unchanged, no process of the lab left) → a second `down`
//! succeeds saying nothing runs.
//!
//! The lab uses fixed names (`ferrolb-*`, `/run/ferrolb-lab`), so everything is one test
//! function: nothing else in this binary may run beside it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metallb-nginx.yaml");

const DUAL_STACK: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx-dual
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector:
    app: nginx
  ports:
  - name: http
    port: 80
";

fn ferrolb(args: &[&str]) -> Output {
    Command::new(FERROLB)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ferrolb starts")
}

fn text(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = ferrolb(args);
    assert!(out.status.success(), "ferrolb {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client's view: which node answers `http://ip/` (None: no answer within 2 s).
fn curl(ip: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            "ferrolb-client",
            "curl",
            "-s",
            "--max-time",
            "2",
        ])
        .arg(format!("http://{ip}/"))
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !body.is_empty()).then_some(body)
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host's links by name and kind (not counters or states that move on their own).
fn host_links() -> BTreeSet<String> {
    sh("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
        .collect()
}

fn lab_namespaces() -> BTreeSet<String> {
    sh("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("ferrolb-"))
        .map(str::to_string)
        .collect()
}

/// Processes of the lab: this build's ferrolb (other worktrees run their own binaries) and
/// anything naming the lab's run directory (FRR's daemons).
fn lab_processes() -> BTreeSet<(u32, String)> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if pid != std::process::id()
            && (cmdline.starts_with(FERROLB) || cmdline.contains("/run/ferrolb-lab"))
        {
            out.insert((pid, cmdline));
        }
    }
    out
}

/// Runs `lab down` when the test ends, passed or not, so a failure leaves nothing behind.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = ferrolb(&["lab", "down"]);
    }
}

#[test]
fn lab_up_apply_curl_fail_heal_down_leaves_the_machine_as_it_was() {
    assert!(
        Path::new("/proc/self")
            .metadata()
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0),
        "the lab test needs root"
    );
    for program in ["/usr/bin/kubectl", "/usr/bin/curl"] {
        assert!(Path::new(program).exists(), "{program} is needed");
    }
    // A lab left over by someone else is not ours to judge: start from a clean machine.
    assert!(
        !Path::new("/run/ferrolb-lab").exists() && lab_namespaces().is_empty(),
        "a ferrolb lab is already running on this machine; run `ferrolb lab down` first"
    );
    // Not root: refused clearly, nothing made.
    let as_nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            FERROLB,
            "lab",
            "up",
        ])
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(!as_nobody.status.success());
    assert!(
        String::from_utf8_lossy(&as_nobody.stderr).contains("must run as root"),
        "{}",
        text(&as_nobody)
    );
    assert!(lab_namespaces().is_empty());

    let links_before = host_links();
    let processes_before = lab_processes();

    let _down = Down;
    let up = ok(&["lab", "up"]);
    assert!(
        up.contains("kubeconfig: /run/ferrolb-lab/kubeconfig"),
        "{up}"
    );
    assert!(up.contains("ferrolb lab status"), "{up}");
    let bgp = !up.contains("FRR not installed");
    let namespaces = lab_namespaces();
    for ns in [
        "ferrolb-lan",
        "ferrolb-api",
        "ferrolb-client",
        "ferrolb-router",
        "ferrolb-node1",
        "ferrolb-node2",
        "ferrolb-node3",
    ] {
        assert!(namespaces.contains(ns), "{ns} missing: {namespaces:?}");
    }
    assert_eq!(
        host_links(),
        links_before,
        "lab up touched the host's links"
    );

    // A second up is refused, clearly, and leaves the running lab alone.
    let again = ferrolb(&["lab", "up"]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already running"),
        "{}",
        text(&again)
    );

    // The user's own manifest.
    let applied = ok(&["lab", "kubectl", "apply", "-f", MANIFEST]);
    assert!(applied.contains("service/nginx created"), "{applied}");
    let slices = ok(&[
        "lab",
        "kubectl",
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=nginx",
        "-o",
        "jsonpath={.items[0].endpoints[*].nodeName}",
    ]);
    assert_eq!(slices.trim(), "node1 node2 node3");
    let ip = wait_for("nginx's address", Duration::from_secs(30), || {
        let ip = ok(&[
            "lab",
            "kubectl",
            "get",
            "svc",
            "nginx",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        let ip = ip.trim().to_string();
        (!ip.is_empty()).then_some(ip)
    });
    assert!(ip.starts_with("100.127.0."), "from the l2 pool: {ip}");
    let owner = wait_for("the client reaching nginx", Duration::from_secs(15), || {
        curl(&ip)
    });
    assert!(owner.starts_with("node"), "{owner}");

    // IPv6 too, with the manifest on stdin (lab kubectl passes it through).
    let mut child = Command::new(FERROLB)
        .args(["lab", "kubectl", "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ferrolb starts");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        DUAL_STACK.as_bytes(),
    )
    .expect("manifest written");
    let applied = child.wait_with_output().expect("kubectl ends");
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(String::from_utf8_lossy(&applied.stdout).contains("service/nginx-dual created"));
    let ips = wait_for(
        "nginx-dual's two addresses",
        Duration::from_secs(30),
        || {
            let ips = ok(&[
                "lab",
                "kubectl",
                "get",
                "svc",
                "nginx-dual",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[*].ip}",
            ]);
            let ips: Vec<String> = ips.split_whitespace().map(str::to_string).collect();
            (ips.len() == 2).then_some(ips)
        },
    );
    let v6 = ips
        .iter()
        .find(|ip| ip.contains(':'))
        .expect("an IPv6 address");
    assert!(v6.starts_with("fdfe:7c4b:1ab0::"), "{v6}");
    wait_for(
        "the client reaching nginx-dual over IPv6",
        Duration::from_secs(15),
        || curl(&format!("[{v6}]")),
    );
    let v6_slice = ok(&[
        "lab",
        "kubectl",
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=nginx-dual",
        "-o",
        "jsonpath={.items[?(@.addressType==\"IPv6\")].endpoints[*].addresses[0]}",
    ]);
    assert_eq!(v6_slice.split_whitespace().count(), 3, "{v6_slice}");

    // The example Services answer too.
    let status = ok(&["lab", "status"]);
    assert!(status.contains("default/hello-l2"), "{status}");
    assert!(status.contains("default/nginx"), "{status}");
    assert!(!status.contains("DEAD"), "{status}");
    if bgp {
        let bgp_ip = ok(&[
            "lab",
            "kubectl",
            "get",
            "svc",
            "hello-bgp",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        let bgp_ip = bgp_ip.trim().to_string();
        assert!(bgp_ip.starts_with("100.127.100."), "{bgp_ip}");
        // Every node announces it: FRR installs one nexthop per node.
        wait_for(
            "the router's ECMP route over three nodes",
            Duration::from_secs(30),
            || {
                let route = sh("ip", &["-n", "ferrolb-router", "route", "show", &bgp_ip]);
                (route.matches("nexthop via 100.127.0.1").count() == 3).then_some(())
            },
        );
        wait_for(
            "the client reaching hello-bgp through the router",
            Duration::from_secs(30),
            || curl(&bgp_ip),
        );
    }

    // Pull the owner's cable: another node takes the address over.
    let failed = ok(&["lab", "fail", &owner]);
    assert!(failed.contains("cable pulled"), "{failed}");
    let other = wait_for("another node answering", Duration::from_secs(15), || {
        curl(&ip).filter(|n| *n != owner)
    });
    assert_ne!(other, owner);
    let status = ok(&["lab", "status"]);
    assert!(status.contains("PULLED"), "{status}");
    let unknown = ferrolb(&["lab", "fail", "node9"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no node \"node9\""),
        "{}",
        text(&unknown)
    );
    ok(&["lab", "heal", &owner]);
    assert!(!ok(&["lab", "status"]).contains("PULLED"));
    wait_for(
        "nginx answering after heal",
        Duration::from_secs(15),
        || curl(&ip),
    );

    // A non-zero kubectl exit code comes through.
    let missing = ferrolb(&["lab", "kubectl", "get", "svc", "no-such-service"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));

    let down = ok(&["lab", "down"]);
    assert!(down.contains("lab down"), "{down}");
    assert!(lab_namespaces().is_empty(), "{:?}", lab_namespaces());
    assert!(!Path::new("/run/ferrolb-lab").exists());
    assert_eq!(
        host_links(),
        links_before,
        "lab down left host links changed"
    );
    assert_eq!(
        lab_processes(),
        processes_before,
        "processes of the lab left behind"
    );
    let twice = ok(&["lab", "down"]);
    assert!(twice.contains("no lab is running"), "{twice}");
    let no_lab = ferrolb(&["lab", "status"]);
    assert!(!no_lab.status.success());
    assert!(String::from_utf8_lossy(&no_lab.stderr).contains("no lab is running"));
}
