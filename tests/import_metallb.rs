//! `ferrolb import-metallb` on realistic MetalLB files of both generations: the TOML it prints
//! (parsed back), the notes on stderr, and `ferrolb check-config` accepting the result with the
//! gossip key a real install has.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/metallb")
        .join(name)
}

/// Runs the import; returns the parsed TOML and stderr, after checking the TOML with the real
/// `check-config`.
fn import(files: &[&str]) -> (toml::Value, String) {
    let out = bin()
        .arg("import-metallb")
        .args(files.iter().map(|f| data(f)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{files:?}: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let checked = check_config(&text);
    let cc_err = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{files:?}: check-config refused:\n{cc_err}\n{text}"
    );
    // The key file supplied; only password files (which the operator copies) may be missing.
    assert!(!cc_err.contains("gossip key"), "{cc_err}");
    for line in cc_err.lines() {
        assert!(line.contains("password_file"), "unexpected warning: {line}");
    }
    (toml::from_str(&text).unwrap(), stderr)
}

/// `ferrolb check-config` on `text`, with what a real install has: a gossip key, mode 0600
/// (the converted file names /etc/ferrolb/gossip.key; the environment points it here).
fn check_config(text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gossip.key");
    fs::write(&key, "q0dXlWkQ0UoKMJ8t4xuhlWkAk0yDNOXcOhWJx6JlWLg=\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("ferrolb.toml");
    fs::write(&config, text).unwrap();
    bin()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .env_remove("FERROLB_CONFIG")
        .env("FERROLB_CLUSTER__SECRET_FILE", &key)
        .output()
        .unwrap()
}

fn strs(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect()
}

#[test]
fn legacy_layer2_configmap() {
    let (v, stderr) = import(&["legacy-layer2.yaml"]);
    let pools = v["pool"].as_array().unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0]["name"].as_str(), Some("default"));
    assert_eq!(pools[0]["mode"].as_str(), Some("l2"));
    assert_eq!(
        strs(&pools[0]["addresses"]),
        ["192.168.1.240-192.168.1.250"]
    );
    assert_eq!(pools[1]["auto_assign"].as_bool(), Some(false));
    assert_eq!(pools[1]["avoid_buggy_ips"].as_bool(), Some(true));
    assert_eq!(
        v["cluster"]["secret_file"].as_str(),
        Some("/etc/ferrolb/gossip.key")
    );
    assert_eq!(stderr, "", "nothing lost");
}

#[test]
fn legacy_bgp_configmap() {
    let (v, stderr) = import(&["legacy-bgp.yaml"]);
    let peers = v["bgp"]["peer"].as_array().unwrap();
    assert_eq!(peers[0]["name"].as_str(), Some("10.0.0.1"));
    assert_eq!(peers[0]["asn"].as_integer(), Some(64501));
    assert_eq!(peers[0]["my_asn"].as_integer(), Some(64500));
    assert_eq!(peers[0]["hold_time"].as_str(), Some("120s"));
    assert_eq!(peers[0]["router_id"].as_str(), Some("10.0.0.100"));
    assert_eq!(peers[0]["node_selector"]["rack"].as_str(), Some("frontend"));
    assert_eq!(
        peers[0]["password_file"].as_str(),
        Some("/etc/ferrolb/bgp-10.0.0.1.password")
    );
    assert_eq!(peers[1]["port"].as_integer(), Some(1179));
    assert_eq!(peers[1]["source_address"].as_str(), Some("10.0.0.50"));
    let prod = &v["pool"][0];
    assert_eq!(prod["mode"].as_str(), Some("bgp"));
    assert_eq!(prod["bgp"]["local_pref"].as_integer(), Some(100));
    assert_eq!(prod["bgp"]["aggregation_length"].as_integer(), Some(32));
    assert_eq!(
        strs(&prod["bgp"]["communities"]),
        ["65535:65282", "64500:100"]
    );
    assert_eq!(
        v["pool"][1]["bgp"]["aggregation_length_v6"].as_integer(),
        Some(120)
    );
    for needle in [
        "note: peers[0].password: ferrolb reads the TCP MD5 password from a file",
        "mode 0600",
        "note: peers[0].node-selectors[0].match-expressions[0]: match expression network-speed NotIn",
        "note: peers[1].bfd-profile: ferrolb has no BFD yet",
        "note: address-pools[0].bgp-advertisements[1]: a ferrolb pool has one advertisement",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    assert!(!stderr.contains("s3cr3t"), "the password is never printed");
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
}

#[test]
fn crd_l2() {
    let (v, stderr) = import(&["crd-l2.yaml"]);
    let first = &v["pool"][0];
    assert_eq!(first["name"].as_str(), Some("first-pool"));
    assert_eq!(first["mode"].as_str(), Some("l2"));
    assert_eq!(strs(&first["addresses"]).len(), 3);
    assert_eq!(strs(&first["interfaces"]), ["eth0"]);
    assert_eq!(
        first["node_selector"]["kubernetes.io/hostname"].as_str(),
        Some("node1")
    );
    let manual = &v["pool"][1];
    assert_eq!(
        manual["mode"].as_str(),
        Some("l2"),
        "selected by ipAddressPoolSelectors"
    );
    assert_eq!(manual["auto_assign"].as_bool(), Some(false));
    assert_eq!(manual["avoid_buggy_ips"].as_bool(), Some(true));
    assert_eq!(stderr, "");
}

#[test]
fn crd_bgp_with_community_aliases() {
    let (v, stderr) = import(&["crd-bgp.yaml"]);
    let pool = &v["pool"][0];
    assert_eq!(pool["mode"].as_str(), Some("bgp"));
    assert_eq!(strs(&pool["bgp"]["peers"]), ["tor1"]);
    assert_eq!(
        strs(&pool["bgp"]["communities"]),
        ["1234:1", "large:64500:7:9", "no-export"]
    );
    assert_eq!(pool["bgp"]["local_pref"].as_integer(), Some(100));
    let tor1 = &v["bgp"]["peer"][0];
    assert_eq!(tor1["name"].as_str(), Some("tor1"));
    assert_eq!(tor1["keepalive_time"].as_str(), Some("30s"));
    assert_eq!(tor1["ebgp_multihop"].as_integer(), Some(255));
    assert_eq!(v["bgp"]["peer"][1]["name"].as_str(), Some("tor2"));
    assert!(
        stderr.contains("note: BGPPeer tor1 spec.vrf: not supported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: IPAddressPool bgp-pool spec.serviceAllocation: not supported"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}

#[test]
fn crd_peer_with_password_secret_and_bfd() {
    let (v, stderr) = import(&["crd-peer-secret.yaml"]);
    let spine = &v["bgp"]["peer"][0];
    assert_eq!(
        spine["password_file"].as_str(),
        Some("/etc/ferrolb/bgp-spine.password")
    );
    assert_eq!(spine["port"].as_integer(), Some(180));
    assert_eq!(spine["connect_time"].as_str(), Some("5s"));
    assert_eq!(spine["router_id"].as_str(), Some("192.0.2.10"));
    assert!(spine.get("node_selector").is_none());
    assert_eq!(v["pool"][0]["mode"].as_str(), Some("bgp"));
    for needle in [
        "note: BFDProfile fast: ferrolb has no BFD yet",
        "note: BGPPeer spine spec.passwordSecret: ferrolb reads the TCP MD5 password from a file",
        "kubectl -n metallb-system get secret spine-md5",
        "note: BGPPeer spine spec.nodeSelectors[0].matchExpressions[0]: match expression node-role.kubernetes.io/worker Exists",
        "note: BGPPeer spine spec.bfdProfile: ferrolb has no BFD yet",
        "note: L2Advertisement dual-l2 (pool dual): a ferrolb pool has one mode",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
}

#[test]
fn mixed_file_skips_unrelated_kinds() {
    let (v, stderr) = import(&["mixed.yaml"]);
    assert_eq!(v["pool"][0]["name"].as_str(), Some("lan"));
    assert_eq!(v["pool"][0]["node_selector"]["role"].as_str(), Some("edge"));
    assert!(
        stderr.contains("note: Namespace metallb-system: not MetalLB configuration; skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: Deployment nginx: not MetalLB configuration; skipped"),
        "{stderr}"
    );
}

#[test]
fn several_files_convert_together() {
    let (v, _) = import(&["legacy-layer2.yaml", "crd-l2.yaml"]);
    assert_eq!(v["pool"].as_array().map(Vec::len), Some(4));
}

#[test]
fn bad_input_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, says) in [
        ("broken.yaml", "a: [unclosed\n", "is not YAML"),
        (
            "other.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
            "holds no MetalLB configuration",
        ),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let out = bin().arg("import-metallb").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty());
        assert!(
            stderr.contains(&format!("{} {says}", path.display())),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let out = bin()
        .arg("import-metallb")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
