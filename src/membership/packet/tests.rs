use proptest::prelude::*;

use super::*;
use crate::membership::keys::{Key, Keyring};

const NOW: u64 = 1_700_000_000_000;

fn ring(bytes: &[[u8; 32]]) -> Security {
    Security::Keys(Keyring::new(bytes.iter().map(|b| Key::new(*b)).collect()).unwrap())
}

fn sealer(sec: &Security, session: u8) -> Sealer {
    Sealer::new(sec, SessionId([session; 16])).unwrap()
}

#[test]
fn round_trip_and_header_is_as_documented() {
    let sec = ring(&[[1; 32]]);
    let mut s = sealer(&sec, 9);
    let p = s.seal(b"hello", NOW);
    assert_eq!(p.len(), OVERHEAD + 5);
    assert_eq!(p[0], VERSION);
    assert_eq!(p[1], 1, "sealed flag");
    assert_eq!(p[2..6], Key::new([1; 32]).id().0);
    assert_eq!(p[6..22], [9; 16]);
    assert_eq!(p[22..30], 1u64.to_be_bytes());
    assert_eq!(p[30..38], NOW.to_be_bytes());
    assert!(!p.windows(5).any(|w| w == b"hello"), "body is encrypted");
    let mut o = Opener::new(sec);
    let opened = o.open(&p, NOW).unwrap();
    assert_eq!(opened.body, b"hello");
    assert_eq!(opened.header.counter, 1);
}

#[test]
fn replays_are_refused_and_reordering_within_the_window_is_not() {
    let sec = ring(&[[1; 32]]);
    let mut s = sealer(&sec, 1);
    let pkts: Vec<_> = (0..200).map(|i| s.seal(&[i as u8], NOW)).collect();
    let mut o = Opener::new(sec);
    o.open(&pkts[150], NOW).unwrap();
    assert_eq!(o.open(&pkts[150], NOW), Err(Reject::Replay));
    // 100 behind the newest: inside the 128 window, never seen.
    o.open(&pkts[50], NOW).unwrap();
    assert_eq!(o.open(&pkts[50], NOW), Err(Reject::Replay));
    // 150 behind: outside the window.
    assert_eq!(o.open(&pkts[0], NOW), Err(Reject::Replay));
    o.open(&pkts[199], NOW).unwrap();
    o.open(&pkts[151], NOW).unwrap();
    assert_eq!(o.open(&pkts[151], NOW), Err(Reject::Replay));
}

#[test]
fn a_new_session_must_be_timely_and_forgotten_sessions_stay_refused() {
    let sec = ring(&[[1; 32]]);
    let mut s = sealer(&sec, 1);
    let old = s.seal(b"x", NOW);
    let mut o = Opener::new(sec.clone());
    // A receiver that never saw the session (or restarted) refuses an old capture...
    assert!(matches!(
        o.open(&old, NOW + MAX_CLOCK_SKEW_MS + 1),
        Err(Reject::Stale { .. })
    ));
    // ...and a stale refusal does not create the session.
    assert_eq!(o.sessions(), 0);
    // A session heard from is remembered past the skew allowance, so a replay within the
    // TTL is caught by its counter, and one after the TTL by its time.
    o.open(&old, NOW).unwrap();
    o.expire(NOW + SESSION_TTL_MS);
    assert_eq!(o.open(&old, NOW + SESSION_TTL_MS), Err(Reject::Replay));
    o.expire(NOW + SESSION_TTL_MS + 1);
    assert_eq!(o.sessions(), 0);
    assert!(matches!(
        o.open(&old, NOW + SESSION_TTL_MS + 1),
        Err(Reject::Stale { .. })
    ));
}

#[test]
fn rotation_any_key_of_the_ring_opens_the_first_seals() {
    let old_only = ring(&[[1; 32]]);
    let rotating = ring(&[[2; 32], [1; 32]]);
    let mut from_old = sealer(&old_only, 1);
    let mut o = Opener::new(rotating.clone());
    assert_eq!(o.open(&from_old.seal(b"a", NOW), NOW).unwrap().body, b"a");
    // The rotating node seals with its first key, which the old node does not have.
    let mut from_rotating = sealer(&rotating, 2);
    let p = from_rotating.seal(b"b", NOW);
    let mut old_opener = Opener::new(old_only);
    assert_eq!(
        old_opener.open(&p, NOW),
        Err(Reject::UnknownKey(Key::new([2; 32]).id()))
    );
}

#[test]
fn plaintext_and_sealed_do_not_mix() {
    let keyed = ring(&[[1; 32]]);
    let mut plain = sealer(&Security::Insecure, 3);
    let p = plain.seal(b"plain", NOW);
    assert_eq!(p[1], 0);
    assert_eq!(&p[HEADER_LEN..], b"plain");
    assert_eq!(
        Opener::new(keyed.clone()).open(&p, NOW),
        Err(Reject::Plaintext)
    );
    let mut insecure = Opener::new(Security::Insecure);
    assert_eq!(insecure.open(&p, NOW).unwrap().body, b"plain");
    assert_eq!(insecure.open(&p, NOW), Err(Reject::Replay));
    let sealed = sealer(&keyed, 4).seal(b"s", NOW);
    assert_eq!(insecure.open(&sealed, NOW), Err(Reject::Sealed));
}

#[test]
fn header_garbage_is_refused_before_any_crypto() {
    let sec = ring(&[[1; 32]]);
    let mut o = Opener::new(sec.clone());
    let mut p = sealer(&sec, 1).seal(b"abc", NOW);
    assert_eq!(o.open(&p[..10], NOW), Err(Reject::Truncated));
    assert_eq!(o.open(&p[..HEADER_LEN + 3], NOW), Err(Reject::Truncated));
    p[0] = 2;
    assert_eq!(o.open(&p, NOW), Err(Reject::Version(2)));
    p[0] = 1;
    p[1] = 0x81;
    assert_eq!(o.open(&p, NOW), Err(Reject::Flags(0x81)));
    assert_eq!(
        o.open(&vec![1u8; MAX_DATAGRAM + 1], NOW),
        Err(Reject::Oversized)
    );
    assert_eq!(o.sessions(), 0);
}

#[test]
fn replay_window_edges() {
    let mut w = ReplayWindow::default();
    assert!(!w.is_fresh(0));
    assert!(w.is_fresh(1));
    w.record(1);
    assert!(!w.is_fresh(1));
    w.record(1000);
    assert!(w.is_fresh(1000 - 127));
    assert!(!w.is_fresh(1000 - 128));
    assert!(!w.is_fresh(1));
    w.record(1000 + 200);
    assert!(w.is_fresh(1000 + 199));
    assert!(!w.is_fresh(1000));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_round_trip(body in proptest::collection::vec(any::<u8>(), 0..1300), session in any::<[u8; 16]>(), key in any::<[u8; 32]>()) {
        let sec = ring(&[key]);
        let mut s = Sealer::new(&sec, SessionId(session)).unwrap();
        let p = s.seal(&body, NOW);
        prop_assert_eq!(p.len(), body.len() + OVERHEAD);
        let opened = Opener::new(sec).open(&p, NOW).unwrap();
        prop_assert_eq!(opened.body, body);
    }

    #[test]
    fn prop_any_bit_flip_is_rejected(body in proptest::collection::vec(any::<u8>(), 0..200), bit in any::<prop::sample::Index>()) {
        let sec = ring(&[[5; 32]]);
        let mut p = sealer(&sec, 1).seal(&body, NOW);
        let i = bit.index(p.len() * 8);
        p[i / 8] ^= 1 << (i % 8);
        let mut o = Opener::new(sec);
        prop_assert!(o.open(&p, NOW).is_err());
        prop_assert_eq!(o.sessions(), 0);
    }

    #[test]
    fn prop_wrong_key_is_rejected(body in proptest::collection::vec(any::<u8>(), 0..200), a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        prop_assume!(a != b);
        let p = sealer(&ring(&[a]), 1).seal(&body, NOW);
        let r = Opener::new(ring(&[b])).open(&p, NOW);
        prop_assert!(matches!(r, Err(Reject::UnknownKey(_))));
        // A header forged to name the receiver's key id still fails authentication.
        let mut forged = p.clone();
        forged[2..6].copy_from_slice(&Key::new(b).id().0);
        prop_assert_eq!(Opener::new(ring(&[b])).open(&forged, NOW), Err(Reject::Auth));
    }

    #[test]
    fn prop_truncation_is_rejected(body in proptest::collection::vec(any::<u8>(), 0..200), cut in any::<prop::sample::Index>()) {
        let sec = ring(&[[5; 32]]);
        let p = sealer(&sec, 1).seal(&body, NOW);
        let n = cut.index(p.len());
        prop_assert!(Opener::new(sec).open(&p[..n], NOW).is_err());
    }

    #[test]
    fn prop_garbage_never_panics(p in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = Opener::new(ring(&[[5; 32]])).open(&p, NOW);
        let _ = Opener::new(Security::Insecure).open(&p, NOW);
    }
}
