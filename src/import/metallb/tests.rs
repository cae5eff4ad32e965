use super::*;

/// Converts one inline file; checks the output passes ferrolb's own validation.
fn conv(yaml: &str) -> (toml::Value, Vec<String>) {
    let c = convert(&[("in.yaml".to_string(), yaml.to_string())]).unwrap();
    if let Err(e) = crate::config::load_str("out.toml", &c.toml) {
        panic!("converted config refused: {e}\n{}", c.toml);
    }
    let v: toml::Value = toml::from_str(&c.toml).unwrap();
    (v, c.notes.iter().map(ToString::to_string).collect())
}

fn has(notes: &[String], needle: &str) -> bool {
    notes.iter().any(|n| n.contains(needle))
}

#[test]
fn legacy_bare_config_with_peers_and_aliases() {
    let (v, notes) = conv(
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 65001\n  my-asn: 65000\n  hold-time: 1m30s\n  ebgp-multihop: true\n  bfd-profile: x\n  password: hunter2\n  node-selectors:\n  - match-labels: {rack: a}\n    match-expressions:\n    - {key: zone, operator: In, values: [z1]}\n  - match-labels: {rack: b}\nbgp-communities:\n  nx: 65535:65281\naddress-pools:\n- name: p\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n  bgp-advertisements:\n  - aggregation-length: 28\n    communities: [nx, 'large:1:2:3']\n",
    );
    let peer = &v["bgp"]["peer"][0];
    assert_eq!(peer["name"].as_str(), Some("10.0.0.1"));
    assert_eq!(peer["hold_time"].as_str(), Some("90s"));
    assert_eq!(peer["ebgp_multihop"].as_integer(), Some(255));
    assert_eq!(peer["node_selector"]["rack"].as_str(), Some("a"));
    assert_eq!(peer["node_selector"]["zone"].as_str(), Some("z1"));
    assert_eq!(
        peer["password_file"].as_str(),
        Some("/etc/ferrolb/bgp-10.0.0.1.password")
    );
    let bgp = &v["pool"][0]["bgp"];
    assert_eq!(bgp["aggregation_length"].as_integer(), Some(28));
    let c: Vec<_> = bgp["communities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(c, ["65535:65281", "large:1:2:3"]);
    assert!(
        has(&notes, "peers[0].bfd-profile: ferrolb has no BFD yet"),
        "{notes:?}"
    );
    assert!(
        has(&notes, "peers[0].node-selectors[1]: MetalLB matches"),
        "{notes:?}"
    );
    assert!(has(&notes, "peers[0].password: "), "{notes:?}");
    // The password itself appears nowhere.
    let c = convert(&[(
        "in.yaml".into(),
        "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, password: hunter2}\n".into(),
    )])
    .unwrap();
    assert!(
        !c.toml.contains("hunter2") && !c.notes.iter().any(|n| n.to_string().contains("hunter2"))
    );
}

#[test]
fn unknown_and_bad_values_are_named() {
    let (v, notes) = conv(
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/30]\n  colour: blue\n  bgp-advertisements: [{localpref: 5}]\n- name: b\n  protocol: ospf\n  addresses: [10.0.1.0/30]\nbfd-profiles: [{name: x}]\nextra: 1\n",
    );
    assert_eq!(v["pool"].as_array().map(Vec::len), Some(1));
    assert!(
        has(&notes, "address-pools[0].colour: unknown key"),
        "{notes:?}"
    );
    assert!(
        has(&notes, "address-pools[0].bgp-advertisements: ignored"),
        "{notes:?}"
    );
    assert!(
        has(&notes, "address-pools[1].protocol: \"ospf\""),
        "{notes:?}"
    );
    assert!(has(&notes, "bfd-profiles: ferrolb has no BFD"), "{notes:?}");
    assert!(has(&notes, "extra: unknown key"), "{notes:?}");
}

#[test]
fn crd_pool_modes_and_selection() {
    let (v, notes) = conv(concat!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: both, labels: {t: x}}\nspec: {addresses: [10.1.0.0/28]}\n---\n",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: idle}\nspec: {addresses: [10.2.0.0/28]}\n---\n",
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec: {ipAddressPoolSelectors: [{matchLabels: {t: x}}]}\n---\n",
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: b}\nspec: {ipAddressPools: [both], aggregationLengthV6: 64, peers: [p1], nodeSelectors: [{matchLabels: {bgp: 'yes'}}]}\n---\n",
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p1}\nspec: {peerAddress: 10.9.0.1, peerASN: 65001, myASN: 65000, enableGracefulRestart: false}\n",
    ));
    let both = &v["pool"][0];
    assert_eq!(both["mode"].as_str(), Some("bgp"));
    assert_eq!(both["bgp"]["peers"][0].as_str(), Some("p1"));
    assert_eq!(both["bgp"]["aggregation_length_v6"].as_integer(), Some(64));
    assert_eq!(both["node_selector"]["bgp"].as_str(), Some("yes"));
    assert_eq!(
        v["bgp"]["peer"][0]["graceful_restart"].as_bool(),
        Some(false)
    );
    assert!(
        has(
            &notes,
            "L2Advertisement l2 (pool both): a ferrolb pool has one mode"
        ),
        "{notes:?}"
    );
    assert_eq!(v["pool"][1]["mode"].as_str(), Some("l2"));
    assert!(
        has(
            &notes,
            "IPAddressPool idle: no L2Advertisement or BGPAdvertisement"
        ),
        "{notes:?}"
    );
}

#[test]
fn bad_input_is_one_error_naming_the_file() {
    let e = convert(&[("x.yaml".into(), "a: [unclosed\n".into())]).unwrap_err();
    assert!(
        matches!(e, ImportError::NotYaml { .. }) && e.to_string().starts_with("x.yaml is not YAML"),
        "{e}"
    );
    let e = convert(&[(
        "d.yaml".into(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: n}\n".into(),
    )])
    .unwrap_err();
    assert_eq!(
        e,
        ImportError::NoMetallb {
            file: "d.yaml".into()
        }
    );
}

#[test]
fn password_paths_are_safe_file_names() {
    assert_eq!(
        model::password_path("2001:db8::1"),
        "/etc/ferrolb/bgp-2001-db8--1.password"
    );
    assert_eq!(
        model::password_path("../tor"),
        "/etc/ferrolb/bgp-..-tor.password"
    );
}

#[test]
fn duplicates_and_unknown_peers_are_resolved() {
    let (v, notes) = conv(concat!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.1.0.0/28]}\n---\n",
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.2.0.0/28]}\n---\n",
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: b}\nspec: {peers: [ghost]}\n---\n",
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: real}\nspec: {peerAddress: 10.9.0.1, peerASN: 1, myASN: 2}\n",
    ));
    assert_eq!(v["pool"].as_array().map(Vec::len), Some(1));
    assert!(v["pool"][0]["bgp"].get("peers").is_none());
    assert!(
        has(&notes, "pool a: a second pool of this name"),
        "{notes:?}"
    );
    assert!(
        has(&notes, "pool a peers: no BGPPeer \"ghost\""),
        "{notes:?}"
    );
}

#[test]
fn a_bgp_pool_without_peers_is_written_valid() {
    let (v, notes) = conv("address-pools:\n- {name: p, protocol: bgp, addresses: [10.3.0.0/28]}\n");
    assert_eq!(v["pool"][0]["mode"].as_str(), Some("l2"));
    assert!(
        has(&notes, "pool p: a bgp pool, but the input has no BGP peers"),
        "{notes:?}"
    );
}

#[test]
fn ranges_with_spaces_and_other_metallb_kinds() {
    let (v, notes) = conv(concat!(
        "address-pools:\n- {name: p, protocol: layer2, addresses: ['10.4.0.1 - 10.4.0.9']}\n---\n",
        "apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {name: s}\n",
    ));
    assert_eq!(
        v["pool"][0]["addresses"][0].as_str(),
        Some("10.4.0.1-10.4.0.9")
    );
    assert!(
        has(
            &notes,
            "ServiceL2Status s: this metallb.io kind has no ferrolb equivalent"
        ),
        "{notes:?}"
    );
}
