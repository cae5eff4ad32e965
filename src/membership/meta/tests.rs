use foca::Invalidates;
use proptest::prelude::*;

use super::*;

fn cfg(text: &str) -> Config {
    crate::config::load_str(
        "/etc/ferrolb/ferrolb.toml",
        &format!("[cluster]\ninsecure = true\n{text}"),
    )
    .unwrap()
    .config
}

const POOLS: &str = "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/30\"]\n\
                     [[pool]]\nname = \"b\"\nmode = \"l2\"\naddresses = [\"10.0.1.1-10.0.1.2\"]\n";

#[test]
fn fingerprint_follows_what_decides_owners_only() {
    let base = pool_fingerprint(&cfg(POOLS));
    // The same pools written differently (range vs CIDR) and unrelated settings: same.
    let same = POOLS.replace("10.0.0.0/30", "10.0.0.0-10.0.0.3");
    assert_eq!(
        pool_fingerprint(&cfg(&format!("[log]\nlevel = \"debug\"\n{same}"))),
        base
    );
    // A different range, selector, failback: different.
    assert_ne!(
        pool_fingerprint(&cfg(&POOLS.replace("10.0.1.2", "10.0.1.3"))),
        base
    );
    assert_ne!(
        pool_fingerprint(&cfg(&format!("[l2]\nfailback = \"immediate\"\n{POOLS}"))),
        base
    );
    let sel = POOLS.replacen(
        "addresses = [\"10.0.0.0/30\"]\n",
        "addresses = [\"10.0.0.0/30\"]\nnode_selector = { zone = \"a\" }\n",
        1,
    );
    assert_ne!(pool_fingerprint(&cfg(&sel)), base);
    assert_eq!(fingerprint_hex(&base).len(), 16);
}

fn id() -> NodeId {
    NodeId::new("n1", "10.0.0.1:7946".parse().unwrap(), 42)
}

fn meta(claims: u32) -> Meta {
    Meta {
        fingerprint: [7; 8],
        pools: ["a".to_string()].into(),
        claims: (0..claims)
            .map(|i| IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) + 1)))
            .collect(),
        leaving: false,
    }
}

#[test]
fn large_metadata_is_split_and_becomes_current_only_when_complete() {
    let m = meta(500);
    let parts = split(&id(), 3, &m).unwrap();
    assert!(parts.len() >= 8, "{}", parts.len());
    let mut t = MetaTable::new();
    // Parts in reverse order; the version shows only once all are in.
    for (i, p) in parts.iter().rev().enumerate() {
        assert!(t.get(&p.addr).is_none());
        let completed = i + 1 == parts.len();
        assert_eq!(t.offer(p), Ok(Offer::New { completed }));
        assert_eq!(t.offer(p), Ok(Offer::Stale), "a repeat is stale");
    }
    let got = t.get(&id().addr).unwrap();
    assert_eq!((got.boot, got.version, &got.meta), (42, 3, &m));
    // Older versions are stale; a new boot starts over even at version 1.
    let older = split(&id(), 2, &meta(1)).unwrap();
    assert_eq!(t.offer(&older[0]), Ok(Offer::Stale));
    let mut reboot = id();
    reboot.boot = 43;
    let fresh = split(&reboot, 1, &Meta::default()).unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(t.offer(&fresh[0]), Ok(Offer::New { completed: true }));
    assert_eq!(t.get(&id().addr).unwrap().meta, Meta::default());
}

#[test]
fn a_newer_version_in_progress_keeps_the_old_one_visible() {
    let mut t = MetaTable::new();
    let v1 = split(&id(), 1, &meta(1)).unwrap();
    t.offer(&v1[0]).unwrap();
    let v2 = split(&id(), 2, &meta(300)).unwrap();
    t.offer(&v2[0]).unwrap();
    assert_eq!(t.get(&id().addr).unwrap().version, 1);
}

#[test]
fn inconsistent_parts_are_errors() {
    let mut t = MetaTable::new();
    let mut p = split(&id(), 1, &meta(1)).unwrap().remove(0);
    p.index = 1;
    assert!(t.offer(&p).is_err());
    p.index = 0;
    p.count = 0;
    assert!(t.offer(&p).is_err());
    p.count = 1;
    p.chunk = vec![0xff; 3];
    assert_eq!(t.offer(&p), Err(MetaError::Undecodable));
}

#[test]
fn newer_versions_invalidate_older_parts_in_the_queue() {
    let k = |version, index| ItemKey::Meta {
        addr: id().addr,
        boot: 1,
        version,
        index,
    };
    assert!(k(2, 0).invalidates(&k(1, 5)));
    assert!(k(2, 0).invalidates(&k(2, 0)));
    assert!(!k(2, 0).invalidates(&k(2, 1)));
    assert!(!k(1, 0).invalidates(&k(2, 0)));
}

proptest! {
    #[test]
    fn prop_items_round_trip_and_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), claims in 0u32..200, version in any::<u64>()) {
        let _ = Item::decode(&bytes);
        for p in split(&id(), version, &meta(claims)).unwrap() {
            let item = Item::Meta(p);
            prop_assert_eq!(Item::decode(&item.encode()), Ok(item.clone()));
            prop_assert!(item.encode().len() <= CHUNK + 64);
        }
    }
}
