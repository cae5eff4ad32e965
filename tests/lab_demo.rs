//! `ferrolb lab demo` end to end, as the README's quick start runs it (as root): it must
//! reach the L2 Service and, with FRR installed (CI installs it), the BGP Service through the
//! router on more than one node, measure the failover after the owner's cable is pulled, tear
//! everything down, and say so in its report; afterwards no `ferrolb-*` namespace, no lab
//! state and no lab process may be left. The lab uses fixed names, so this is the file's only
//! test (cargo runs test binaries one after another, so it never overlaps `tests/lab_up.rs`).

use std::process::Command;

const FERROLB: &str = env!("CARGO_BIN_EXE_ferrolb");

#[test]
fn lab_demo_reaches_both_modes_measures_failover_and_leaves_nothing() {
    assert!(
        std::path::Path::new("/usr/lib/frr/bgpd").exists(),
        "FRR must be installed for the BGP part (apt-get install frr)"
    );
    let out = Command::new(FERROLB)
        .args(["lab", "demo"])
        .output()
        .expect("ferrolb starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lab demo failed:\n{stdout}\n{stderr}");
    let report = stdout
        .split("ferrolb lab demo — report")
        .nth(1)
        .unwrap_or_else(|| panic!("no report:\n{stdout}"));
    let line = |start: &str| -> String {
        report
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} line in the report:\n{report}"))
            .to_string()
    };
    assert!(line("L2 reached:").contains("answered by node"), "{report}");
    let bgp = line("BGP reached:");
    let nodes = ["node1", "node2", "node3"]
        .iter()
        .filter(|n| bgp.contains(*n))
        .count();
    assert!(nodes >= 2, "ECMP spread over {nodes} node(s): {bgp}");
    let failover = line("failover measured:");
    let ms: u64 = failover
        .split("after ")
        .nth(1)
        .and_then(|t| t.split(" ms").next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {failover:?}"));
    assert!(ms > 0, "{failover}");
    assert!(
        line("BGP during the failure:").contains("probes failed"),
        "{report}"
    );
    assert_eq!(
        line("torn down:"),
        "torn down: no ferrolb-* namespace or lab process left"
    );
    // And the machine agrees.
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.lines().any(|l| l.starts_with("ferrolb-")),
        "namespaces left: {netns}"
    );
    assert!(!std::path::Path::new("/run/ferrolb-lab").exists());
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines().any(|l| l.contains("/run/ferrolb-lab")),
        "lab processes left:\n{ps}"
    );
}
