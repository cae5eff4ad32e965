use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::l2::frame::testutil::{arp_frame, ns_frame, ArpSpec, NsSpec, OURS};
use crate::l2::{arp, ndp};

/// A classic BPF interpreter for the opcodes these programs use, with the kernel's semantics:
/// a load past the end of the frame ends the program with 0, running off the end is refused
/// (the kernel's checker rejects such programs), unknown opcodes fail the test.
fn run(program: &[Insn], frame: &[u8]) -> u32 {
    let mut pc = 0usize;
    let mut a: u32 = 0;
    loop {
        let insn = program.get(pc).expect("program runs off its end");
        pc += 1;
        match insn.code {
            LD_H_ABS => {
                let at = insn.k as usize;
                let Some(bytes) = frame.get(at..at + 2) else {
                    return 0;
                };
                a = u32::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            }
            LD_B_ABS => {
                let Some(&byte) = frame.get(insn.k as usize) else {
                    return 0;
                };
                a = u32::from(byte);
            }
            JEQ_K => {
                pc += usize::from(if a == insn.k { insn.jt } else { insn.jf });
            }
            RET_K => return insn.k,
            other => panic!("opcode {other:#06x} not in the interpreter"),
        }
    }
}

#[test]
fn opcodes_have_the_kernel_values() {
    // linux/filter.h: BPF_STMT(BPF_LD|BPF_H|BPF_ABS, 12) is { 0x28, 0, 0, 0x0000000c }.
    assert_eq!(LD_H_ABS, 0x28);
    assert_eq!(LD_B_ABS, 0x30);
    assert_eq!(JEQ_K, 0x15);
    assert_eq!(RET_K, 0x06);
    assert_eq!(std::mem::size_of::<Insn>(), 8);
}

#[test]
fn arp_program_is_what_tcpdump_compiles() {
    // Exactly what `tcpdump -dd 'arp[0:2] = 1 and arp[2:2] = 0x0800 and arp[6:2] = 1'`
    // prints (tcpdump 4.99, libpcap 1.10), accept length included.
    let expected = [
        (0x28, 0, 0, 12),
        (0x15, 0, 7, 0x0806),
        (0x28, 0, 0, 14),
        (0x15, 0, 5, 1),
        (0x28, 0, 0, 16),
        (0x15, 0, 3, 0x0800),
        (0x28, 0, 0, 20),
        (0x15, 0, 1, 1),
        (0x06, 0, 0, ACCEPT),
        (0x06, 0, 0, 0),
    ];
    let program: Vec<_> = arp_requests()
        .iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect();
    assert_eq!(program, expected);
}

#[test]
fn ns_program_is_what_tcpdump_compiles() {
    // Exactly what `tcpdump -dd 'ip6 and ip6[6] = 58 and ip6[40] = 135'` prints.
    let expected = [
        (0x28, 0, 0, 12),
        (0x15, 0, 5, 0x86dd),
        (0x30, 0, 0, 20),
        (0x15, 0, 3, 58),
        (0x30, 0, 0, 54),
        (0x15, 0, 1, 135),
        (0x06, 0, 0, ACCEPT),
        (0x06, 0, 0, 0),
    ];
    let program: Vec<_> = neighbor_solicitations()
        .iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect();
    assert_eq!(program, expected);
}

/// A minimal IPv4/UDP frame (not built by anything under test).
fn ipv4_frame() -> Vec<u8> {
    let mut frame = vec![0u8; 60];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[23] = 17;
    frame
}

/// Frames each program must accept (`true`) or reject, by name.
fn corpus() -> Vec<(&'static str, Vec<u8>, bool, bool)> {
    let request = arp_frame(&ArpSpec::default());
    let parsed = arp::parse_request(&request).expect("request");
    let [announce, garp_reply] = arp::gratuitous(Ipv4Addr::new(192, 0, 2, 10), OURS);
    let ns = ns_frame(&NsSpec::default());
    let solicitation = ndp::parse_solicitation(&ns).expect("ns");
    let nud = ns_frame(&NsSpec {
        destination: "2001:db8::10".parse().expect("address"),
        options: vec![],
        ..NsSpec::default()
    });
    let rs = ns_frame(&NsSpec {
        icmp_type: 133,
        ..NsSpec::default()
    });
    let hop_by_hop = ns_frame(&NsSpec {
        next_header: 0,
        ..NsSpec::default()
    });
    let udp6 = ns_frame(&NsSpec {
        next_header: 17,
        ..NsSpec::default()
    });
    let vlan_arp = arp_frame(&ArpSpec {
        ethertype: 0x8100,
        ..ArpSpec::default()
    });
    // name, frame, ARP program accepts, NS program accepts
    vec![
        ("arp request", request.clone(), true, false),
        ("arp request unpadded", request[..42].to_vec(), true, false),
        ("arp announcement", announce, true, false),
        ("arp reply", arp::reply(&parsed, OURS), false, false),
        ("gratuitous reply", garp_reply, false, false),
        (
            "rarp request",
            arp_frame(&ArpSpec {
                ethertype: 0x8035,
                op: 3,
                ..ArpSpec::default()
            }),
            false,
            false,
        ),
        (
            "arp over ieee802",
            arp_frame(&ArpSpec {
                htype: 6,
                ..ArpSpec::default()
            }),
            false,
            false,
        ),
        (
            "arp for ipv6 ptype",
            arp_frame(&ArpSpec {
                ptype: 0x86dd,
                ..ArpSpec::default()
            }),
            false,
            false,
        ),
        ("vlan-tagged arp", vlan_arp, false, false),
        ("arp cut before op", request[..21].to_vec(), false, false),
        ("ipv4 udp", ipv4_frame(), false, false),
        ("ns", ns.clone(), false, true),
        ("nud ns", nud, false, true),
        ("ns cut after type", ns[..55].to_vec(), false, true),
        ("ns cut before type", ns[..54].to_vec(), false, false),
        ("na", ndp::advertisement(&solicitation, OURS), false, false),
        (
            "unsolicited na",
            ndp::unsolicited("2001:db8::10".parse().expect("address"), OURS),
            false,
            false,
        ),
        ("rs", rs, false, false),
        ("ns behind hop-by-hop", hop_by_hop, false, false),
        ("udp6", udp6, false, false),
        ("empty", vec![], false, false),
        ("ethernet header only", request[..14].to_vec(), false, false),
    ]
}

#[test]
fn programs_accept_exactly_their_frames() {
    let arp_program = arp_requests();
    let ns_program = neighbor_solicitations();
    for (name, frame, arp_accepts, ns_accepts) in corpus() {
        let expect = |accepts| if accepts { ACCEPT } else { REJECT };
        assert_eq!(
            run(&arp_program, &frame),
            expect(arp_accepts),
            "arp program, {name}"
        );
        assert_eq!(
            run(&ns_program, &frame),
            expect(ns_accepts),
            "ns program, {name}"
        );
    }
}

proptest! {
    /// The filters are supersets of the parsers: nothing a parser takes is dropped in the kernel.
    #[test]
    fn filters_pass_everything_the_parsers_accept(bytes in proptest::collection::vec(any::<u8>(), 0..100), arp_head in any::<bool>()) {
        let mut frame = bytes;
        // Steer half the cases into the interesting prefix so the parsers sometimes accept.
        if arp_head && frame.len() >= 22 {
            frame[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        }
        if arp::parse_request(&frame).is_ok() {
            prop_assert_eq!(run(&arp_requests(), &frame), ACCEPT);
        }
        if ndp::parse_solicitation(&frame).is_ok() {
            prop_assert_eq!(run(&neighbor_solicitations(), &frame), ACCEPT);
        }
        let verdict = run(&arp_requests(), &frame);
        prop_assert!(verdict == ACCEPT || verdict == REJECT);
    }
}

#[test]
fn programs_pick_the_requests_out_of_captured_traffic() {
    use crate::l2::frame::captured::ALL;
    let arp_program = arp_requests();
    let ns_program = neighbor_solicitations();
    let mut arp_taken = vec![];
    let mut ns_taken = vec![];
    for (name, frame) in ALL {
        if run(&arp_program, frame) == ACCEPT {
            arp_taken.push(name);
        }
        if run(&ns_program, frame) == ACCEPT {
            ns_taken.push(name);
        }
    }
    assert_eq!(arp_taken, ["arping request"]);
    assert_eq!(ns_taken, ["ndisc6 ns", "kernel dad ns", "kernel nud ns"]);
}
