//! Malformed messages and the remedy each gets: the NOTIFICATION (RFC 4271 §6) or
//! treat-as-withdraw / attribute-discard (RFC 7606).

use super::super::*;
use super::{decode, frame, update_body, CTX4};

fn notification(bytes: &[u8], ctx: &Context) -> Notification {
    match decode_any(bytes, ctx) {
        Err(DecodeError::SessionReset { notification, .. }) => notification,
        other => panic!("expected a session reset, got {other:?}"),
    }
}

/// Like `decode`, without the framing assertion (the header itself may be the problem).
fn decode_any(bytes: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
    Message::decode(bytes, ctx)
}

fn withdrawn(bytes: &[u8]) -> Update {
    match decode(bytes, &CTX4) {
        Err(DecodeError::TreatAsWithdraw { withdraw, .. }) => *withdraw,
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

fn update(bytes: &[u8]) -> Update {
    match decode(bytes, &CTX4) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

fn header(subcode: HeaderSubcode, data: &[u8]) -> Notification {
    Notification::new(ErrorCode::MessageHeader(subcode), data.to_vec())
}

fn open(subcode: OpenSubcode, data: &[u8]) -> Notification {
    Notification::new(ErrorCode::Open(subcode), data.to_vec())
}

fn upd(subcode: UpdateSubcode, data: &[u8]) -> Notification {
    Notification::new(ErrorCode::Update(subcode), data.to_vec())
}

#[test]
fn header_errors() {
    let mut bad_marker = frame(4, &[]);
    bad_marker[3] = 0;
    assert_eq!(
        notification(&bad_marker, &CTX4),
        header(HeaderSubcode::ConnectionNotSynchronized, &[])
    );
    assert_eq!(
        frame_len(&bad_marker, &CTX4)
            .unwrap_err()
            .notification()
            .cloned(),
        Some(notification(&bad_marker, &CTX4))
    );

    let mut short = frame(4, &[]);
    short[17] = 18;
    assert_eq!(
        notification(&short, &CTX4),
        header(HeaderSubcode::BadMessageLength, &[0, 18])
    );

    let long_keepalive = frame(4, &[0]);
    assert_eq!(
        notification(&long_keepalive, &CTX4),
        header(HeaderSubcode::BadMessageLength, &[0, 20])
    );

    let short_open = frame(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1]);
    assert_eq!(
        notification(&short_open, &CTX4),
        header(HeaderSubcode::BadMessageLength, &[0, 28])
    );

    assert_eq!(
        notification(&frame(9, &[]), &CTX4),
        header(HeaderSubcode::BadMessageType, &[9])
    );

    // Over 4096 without extended messages, refused from the header alone.
    let mut big = vec![0xff; 16];
    big.extend_from_slice(&[0x10, 0x01, 2]);
    assert_eq!(
        frame_len(&big, &CTX4).unwrap_err().notification(),
        Some(&header(HeaderSubcode::BadMessageLength, &[0x10, 0x01]))
    );
    let ext = Context {
        extended_messages: true,
        ..CTX4
    };
    assert_eq!(frame_len(&big, &ext), Ok(None));
    let mut big_open = big.clone();
    big_open[18] = 1;
    assert!(
        frame_len(&big_open, &ext).is_err(),
        "OPEN stays within 4096 (RFC 8654)"
    );
}

fn open_body(version: u8, asn: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&asn.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(u8::try_from(params.len()).unwrap());
    b.extend_from_slice(params);
    b
}

#[test]
fn open_errors() {
    let id = [10, 0, 0, 1];
    let ctx = Context::default();
    let n = |body: Vec<u8>| notification(&frame(1, &body), &ctx);
    assert_eq!(
        n(open_body(3, 100, 90, id, &[])),
        open(OpenSubcode::UnsupportedVersionNumber, &[0, 4])
    );
    assert_eq!(
        n(open_body(4, 0, 90, id, &[])),
        open(OpenSubcode::BadPeerAs, &[])
    );
    assert_eq!(
        n(open_body(4, 100, 90, id, &[2, 6, 65, 4, 0, 0, 0, 0])),
        open(OpenSubcode::BadPeerAs, &[]),
        "4-octet AS 0"
    );
    assert_eq!(
        n(open_body(4, 100, 90, [0; 4], &[])),
        open(OpenSubcode::BadBgpIdentifier, &[])
    );
    assert_eq!(
        n(open_body(4, 100, 1, id, &[])),
        open(OpenSubcode::UnacceptableHoldTime, &[])
    );
    assert_eq!(
        n(open_body(4, 100, 2, id, &[])),
        open(OpenSubcode::UnacceptableHoldTime, &[])
    );
    assert!(
        decode(&frame(1, &open_body(4, 100, 0, id, &[])), &ctx).is_ok(),
        "hold time 0 is fine"
    );
    assert!(decode(&frame(1, &open_body(4, 100, 3, id, &[])), &ctx).is_ok());
    assert_eq!(
        n(open_body(4, 100, 90, id, &[1, 2, 0, 0])),
        open(OpenSubcode::UnsupportedOptionalParameter, &[])
    );
    assert_eq!(
        n(open_body(4, 100, 90, id, &[2, 4, 65, 4, 0])),
        open(OpenSubcode::Unspecific, &[])
    );
    assert_eq!(
        n(open_body(4, 100, 90, id, &[2, 3, 1, 3, 0, 1, 0])),
        open(OpenSubcode::Unspecific, &[])
    );
    let mut lying = open_body(4, 100, 90, id, &[2, 2, 2, 0]);
    lying[9] = 5; // parameter length larger than what follows
    assert_eq!(n(lying), open(OpenSubcode::Unspecific, &[]));
}

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];
const NLRI: [u8; 5] = [32, 198, 51, 100, 10];

fn with_mandatory(extra: &[u8]) -> Vec<u8> {
    [&ORIGIN[..], &AS_PATH, &NEXT_HOP, extra].concat()
}

fn nlri_update(attrs: &[u8]) -> Vec<u8> {
    frame(2, &update_body(&[24, 10, 0, 1], attrs, &NLRI))
}

fn both_v4() -> Vec<ipnet::Ipv4Net> {
    vec![
        "10.0.1.0/24".parse().unwrap(),
        "198.51.100.10/32".parse().unwrap(),
    ]
}

#[test]
fn update_length_errors_reset_the_session() {
    let too_long_withdrawn = frame(2, &[0, 9, 0, 0]);
    assert_eq!(
        notification(&too_long_withdrawn, &CTX4),
        upd(UpdateSubcode::MalformedAttributeList, &[])
    );
    let too_long_attrs = frame(2, &[0, 0, 0, 1]);
    assert_eq!(
        notification(&too_long_attrs, &CTX4),
        upd(UpdateSubcode::MalformedAttributeList, &[])
    );
    let bad_prefix = frame(
        2,
        &update_body(&[], &with_mandatory(&[]), &[33, 1, 2, 3, 4, 5]),
    );
    assert_eq!(
        notification(&bad_prefix, &CTX4),
        upd(UpdateSubcode::InvalidNetworkField, &[])
    );
    let truncated_prefix = frame(2, &update_body(&[24, 10, 0], &[], &[]));
    assert_eq!(
        notification(&truncated_prefix, &CTX4),
        upd(UpdateSubcode::InvalidNetworkField, &[])
    );
}

#[test]
fn malformed_attributes_are_treat_as_withdraw() {
    let cases: [(&str, Vec<u8>); 9] = [
        ("MED of 3 octets", with_mandatory(&[0x80, 4, 3, 0, 0, 0])),
        (
            "LOCAL_PREF of 5 octets",
            with_mandatory(&[0x40, 5, 5, 0, 0, 0, 0, 0]),
        ),
        ("empty COMMUNITIES", with_mandatory(&[0xc0, 8, 0])),
        (
            "COMMUNITIES of 6 octets",
            with_mandatory(&[0xc0, 8, 6, 0, 0, 0, 0, 0, 0]),
        ),
        (
            "LARGE_COMMUNITY of 8 octets",
            with_mandatory(&[0xc0, 32, 8, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        (
            "ORIGIN 3",
            [&[0x40, 1, 1, 3][..], &AS_PATH, &NEXT_HOP].concat(),
        ),
        (
            "ORIGIN marked optional",
            [&[0xc0, 1, 1, 0][..], &AS_PATH, &NEXT_HOP].concat(),
        ),
        (
            "AS_PATH segment type 5",
            [&ORIGIN[..], &[0x40, 2, 6, 5, 1, 0, 0, 0, 1], &NEXT_HOP].concat(),
        ),
        ("NEXT_HOP missing", [&ORIGIN[..], &AS_PATH].concat()),
    ];
    for (what, attrs) in cases {
        let got = withdrawn(&nlri_update(&attrs));
        assert_eq!(got.withdrawn, both_v4(), "{what}");
        assert!(
            got.nlri.is_empty() && got.attributes == PathAttributes::default(),
            "{what}"
        );
    }
    // More AS_PATH malformations (RFC 7606 §7.2): empty segment, segment overrun.
    for bad in [
        [0x40, 2, 2, 2, 0].as_slice(),
        &[0x40, 2, 6, 2, 2, 0, 0, 0, 1],
    ] {
        let got = withdrawn(&nlri_update(&[&ORIGIN[..], bad, &NEXT_HOP].concat()));
        assert_eq!(got.withdrawn, both_v4());
    }
}

#[test]
fn attribute_overrun_is_treat_as_withdraw() {
    // The last attribute claims 9 octets, 4 remain; and a 2-octet tail too short for a header.
    for tail in [[0x80, 4, 9, 0, 0, 0, 0].as_slice(), &[0x80, 4]] {
        let got = withdrawn(&nlri_update(&with_mandatory(tail)));
        assert_eq!(got.withdrawn, both_v4());
    }
}

#[test]
fn ipv6_routes_are_withdrawn_too() {
    let mut mp = vec![0x80, 14, 24, 0, 2, 1, 16];
    mp.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    mp.extend_from_slice(&[0, 16, 0x20, 0x01]);
    let bad_med = [0x80, 4, 1, 0];
    let got = withdrawn(&frame(
        2,
        &update_body(&[], &[&ORIGIN[..], &AS_PATH, &mp, &bad_med].concat(), &[]),
    ));
    assert_eq!(
        got.mp_unreach.unwrap().withdrawn,
        vec!["2001::/16".parse::<ipnet::Ipv6Net>().unwrap()]
    );

    // A next hop of 5 octets: the NLRI still parses, so treat-as-withdraw.
    let mut bad_nh = vec![0x80, 14, 14, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0, 16, 0x20, 0x01];
    bad_nh[2] = u8::try_from(bad_nh.len() - 3).unwrap();
    let got = withdrawn(&frame(
        2,
        &update_body(&[], &[&ORIGIN[..], &AS_PATH, &bad_nh].concat(), &[]),
    ));
    assert_eq!(got.mp_unreach.unwrap().withdrawn.len(), 1);
}

#[test]
fn mp_attribute_errors_reset_the_session() {
    let bad_nlri = [
        0x80, 14, 22, 0, 2, 1, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 129,
    ];
    assert_eq!(
        notification(
            &frame(
                2,
                &update_body(&[], &[&ORIGIN[..], &AS_PATH, &bad_nlri].concat(), &[])
            ),
            &CTX4
        ),
        upd(UpdateSubcode::OptionalAttributeError, &bad_nlri)
    );
    let unreach = [0x80, 15, 3, 0, 2, 1];
    assert_eq!(
        notification(
            &frame(2, &update_body(&[], &[unreach, unreach].concat(), &[])),
            &CTX4
        ),
        upd(UpdateSubcode::MalformedAttributeList, &[])
    );
    let wrong_flags = [0x40, 15, 3, 0, 2, 1];
    assert_eq!(
        notification(&frame(2, &update_body(&[], &wrong_flags, &[])), &CTX4),
        upd(UpdateSubcode::AttributeFlagsError, &wrong_flags)
    );
    let truncated = [0x80, 15, 2, 0, 2];
    assert_eq!(
        notification(&frame(2, &update_body(&[], &truncated, &[])), &CTX4),
        upd(UpdateSubcode::OptionalAttributeError, &truncated)
    );
}

#[test]
fn unrecognized_well_known_attribute_resets_with_the_attribute_as_data() {
    let attr = [0x40, 99, 1, 7];
    assert_eq!(
        notification(&nlri_update(&with_mandatory(&attr)), &CTX4),
        upd(UpdateSubcode::UnrecognizedWellKnownAttribute, &attr)
    );
}

#[test]
fn repeats_and_bad_discardable_attributes_are_dropped() {
    let attrs = with_mandatory(&[
        0x80, 4, 4, 0, 0, 0, 7, // MED 7
        0x80, 4, 4, 0, 0, 0, 9, // MED again: dropped
        0x40, 6, 1, 0, // ATOMIC_AGGREGATE with a value: dropped
        0xc0, 7, 5, 0, 0, 0, 0, 0, // AGGREGATOR of 5 octets: dropped
        0x40, 1, 1, 2, // ORIGIN again: dropped
        0x80, 18, 8, 0, 0, 0, 1, 1, 2, 3,
        4, // AS4_AGGREGATOR: ignored between 4-octet speakers
    ]);
    let u = update(&nlri_update(&attrs));
    assert_eq!(u.attributes.med, Some(7));
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
    assert!(!u.attributes.atomic_aggregate && u.attributes.aggregator.is_none());
    assert_eq!(u.discarded, vec![4, 6, 7, 1, 18]);
    assert_eq!(
        u.nlri,
        vec!["198.51.100.10/32".parse::<ipnet::Ipv4Net>().unwrap()]
    );
}

#[test]
fn as4_attributes_are_ignored_between_four_octet_speakers() {
    let as4 = [0xc0, 17, 6, 2, 1, 0, 0, 0, 9];
    let u = update(&nlri_update(&with_mandatory(&as4)));
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence([65001])));
    assert_eq!(u.discarded, vec![17]);
}

#[test]
fn other_families_in_mp_attributes_are_ignored() {
    let vpn = [0x80, 15, 3, 0, 1, 128];
    let u = update(&frame(2, &update_body(&[], &vpn, &[])));
    assert_eq!((u.mp_unreach, u.discarded), (None, vec![15]));
}

#[test]
fn encoding_refuses_what_the_wire_cannot_carry() {
    let huge = Update {
        withdrawn: vec!["10.0.0.0/8".parse().unwrap(); 3000],
        ..Update::default()
    };
    assert!(matches!(
        Message::Update(huge).encode(&CTX4),
        Err(EncodeError::TooLong { .. })
    ));
    let empty_segment = Update {
        attributes: PathAttributes {
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![],
                }],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    assert!(matches!(
        Message::Update(empty_segment).encode(&CTX4),
        Err(EncodeError::Invalid(_))
    ));
    let gr = Open {
        asn: 1,
        hold_time: 90,
        bgp_id: std::net::Ipv4Addr::new(1, 1, 1, 1),
        capabilities: vec![Capability::GracefulRestart(GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 4096,
            families: vec![],
        })],
    };
    assert!(matches!(
        Message::Open(gr).encode(&CTX4),
        Err(EncodeError::Invalid(_))
    ));
}

#[test]
fn wrong_flags_on_a_discardable_attribute_discard_it() {
    let agg = [0x40, 7, 6, 0, 100, 1, 2, 3, 4]; // AGGREGATOR marked well-known
    let Ok(Message::Update(u)) = decode(&nlri_update(&with_mandatory(&agg)), &CTX4) else {
        panic!("not an UPDATE");
    };
    assert_eq!((u.attributes.aggregator, u.discarded), (None, vec![7]));
}
