//! Our ARP and NDP frames, as `ferrolb::l2::{arp, ndp}` build them, sent raw into a lab LAN and
//! judged by a real Linux neighbour table: takeover frames must replace an existing entry, a
//! corrupted checksum must not, and our answer to a DAD probe must make the prober give up.
//!
//! The frames are sent by a three-line Python `AF_PACKET` sender inside the speaker's namespace,
//! so nothing here needs the responder's IO code. Needs root, `ip` and `python3`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use common::netlab::*;
use ferrolb::l2::frame::MacAddr;
use ferrolb::l2::{arp, ndp};

/// Another MAC the client's entry starts with, so a takeover is visible.
const OLD_MAC: &str = "02:00:00:00:0c:01";

/// Sends each hex argument as one frame on `eth0`.
const SEND: &str = "import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
for frame in sys.argv[1:]: s.send(bytes.fromhex(frame))";

/// Prints `ready`, then the hex of the first received NS for the target in argv[1], then exits
/// (after 20 s without one, prints nothing more).
const SNIFF_NS: &str = "import select, socket, sys, time
want = socket.inet_pton(socket.AF_INET6, sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
s.bind(('eth0', 0))
print('ready', flush=True)
end = time.time() + 20
while time.time() < end:
    if not select.select([s], [], [], 0.2)[0]: continue
    f = s.recv(65535)
    if len(f) >= 78 and f[54] == 135 and f[62:78] == want:
        print(f.hex(), flush=True)
        break";

struct Pair {
    lab: Lab,
    speaker: Host,
    client: Host,
    speaker_mac: MacAddr,
}

/// A speaker and a client on one LAN. The client keeps neighbour entries locked for 10 s
/// after a change (`locktime`, default 1 s) so "replaces the entry within locktime" does not
/// depend on how fast this machine starts Python.
fn pair(prefix: &str, n: u8) -> Pair {
    require_program("python3");
    let lab = Lab::new(prefix);
    let speaker = lab.host(
        "spk",
        &format!("10.250.{n}.11/24"),
        Some(&format!("fd00:250:{n}::11/64")),
    );
    let client = lab.host(
        "cli",
        &format!("10.250.{n}.21/24"),
        Some(&format!("fd00:250:{n}::21/64")),
    );
    lab.sysctl(&client.ns, &[("net.ipv4.neigh.eth0.locktime", "1000")]);
    let text = lab
        .exec(&speaker.ns, "cat", &["/sys/class/net/eth0/address"])
        .expect_ok("speaker MAC");
    let speaker_mac = text.trim().parse().expect("a MAC address");
    Pair {
        lab,
        speaker,
        client,
        speaker_mac,
    }
}

impl Pair {
    fn send(&self, frames: &[&[u8]]) {
        let hex: Vec<String> = frames.iter().map(|f| hex(f)).collect();
        let mut args = vec!["-c", SEND];
        args.extend(hex.iter().map(String::as_str));
        self.lab
            .exec(&self.speaker.ns, "python3", &args)
            .expect_ok("send frames");
    }

    /// `ip neigh` on the client for `address`.
    fn neighbour(&self, address: &str) -> String {
        self.lab
            .exec(
                &self.client.ns,
                "ip",
                &["neigh", "show", address, "dev", "eth0"],
            )
            .expect_ok("ip neigh")
    }

    /// Gives the client an entry for `address` at [`OLD_MAC`], made just now.
    fn old_entry(&self, address: &str) {
        self.lab
            .exec(
                &self.client.ns,
                "ip",
                &[
                    "neigh", "add", address, "lladdr", OLD_MAC, "dev", "eth0", "nud", "stale",
                ],
            )
            .expect_ok("ip neigh add");
    }

    fn wait_entry(&self, address: &str, mac: &str) {
        wait_for(
            &format!("client entry for {address} at {mac}"),
            Duration::from_secs(3),
            || {
                let seen = self.neighbour(address);
                if seen.contains(mac) {
                    Ok(())
                } else {
                    Err(seen)
                }
            },
        );
    }

    /// Asserts the entry for `address` still has [`OLD_MAC`] a moment after a frame was sent.
    fn assert_unchanged(&self, address: &str, what: &str) {
        std::thread::sleep(Duration::from_millis(300));
        let seen = self.neighbour(address);
        assert!(seen.contains(OLD_MAC), "{what} changed the entry: {seen}");
    }
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn gratuitous_arp_of_either_form_replaces_an_entry_within_locktime() {
    let p = pair("flb-frk1", 40);
    let mac = p.speaker_mac.to_string();
    let vip = Ipv4Addr::new(10, 250, 40, 100);
    let [_, reply] = arp::gratuitous(vip, p.speaker_mac);

    // The reply form with MetalLB's target hardware address (broadcast) is not gratuitous to
    // Linux (arp_is_garp wants target = sender hardware address), so within locktime it is
    // ignored: this is why ours carries our MAC there.
    let mut metallb_style = reply.clone();
    metallb_style[32..38].fill(0xff);
    p.old_entry("10.250.40.100");
    p.send(&[&metallb_style]);
    p.assert_unchanged(
        "10.250.40.100",
        "a reply with broadcast target hardware address",
    );

    p.send(&[&reply]);
    p.wait_entry("10.250.40.100", &mac);

    let vip2 = Ipv4Addr::new(10, 250, 40, 101);
    let [request2, _] = arp::gratuitous(vip2, p.speaker_mac);
    p.old_entry("10.250.40.101");
    p.send(&[&request2]);
    p.wait_entry("10.250.40.101", &mac);
}

#[test]
fn unsolicited_na_overrides_an_entry_and_a_bad_checksum_does_not() {
    let p = pair("flb-frk2", 41);
    let vip: Ipv6Addr = "fd00:250:41::100".parse().expect("address");
    let na = ndp::unsolicited(vip, p.speaker_mac);
    p.old_entry("fd00:250:41::100");

    let mut corrupted = na.clone();
    corrupted[57] ^= 0x01;
    p.send(&[&corrupted]);
    p.assert_unchanged("fd00:250:41::100", "an NA with a bad checksum");

    p.send(&[&na]);
    p.wait_entry("fd00:250:41::100", &p.speaker_mac.to_string());
}

#[test]
fn our_answer_to_a_dad_probe_makes_the_prober_give_up_the_address() {
    let p = pair("flb-frk3", 42);
    let vip = "fd00:250:42::100";
    let log = p.lab.path("sniff.log");
    let (_sniffer, stdout) =
        p.lab
            .spawn_piped(&p.speaker.ns, "python3", &["-c", SNIFF_NS, vip], &log);
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "sniffer: {}",
        tail(&log, 20)
    );

    // The client adds the address with duplicate address detection on: it sends a DAD probe.
    p.lab
        .sysctl(&p.client.ns, &[("net.ipv6.conf.eth0.accept_dad", "1")]);
    p.lab
        .exec(
            &p.client.ns,
            "ip",
            &["addr", "add", &format!("{vip}/64"), "dev", "eth0"],
        )
        .expect_ok("ip addr add");

    let probe = lines
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no DAD probe seen: {}", tail(&log, 20)));
    let ns = ndp::parse_solicitation(&unhex(&probe)).expect("the kernel's DAD probe parses");
    assert!(ns.is_dad(), "{ns:?}");
    assert_eq!(ns.target, vip.parse::<Ipv6Addr>().expect("address"));
    p.send(&[&ndp::advertisement(&ns, p.speaker_mac)]);

    wait_for(
        "the client's address marked dadfailed",
        Duration::from_secs(5),
        || {
            let out = p
                .lab
                .exec(&p.client.ns, "ip", &["-6", "addr", "show", "dev", "eth0"])
                .expect_ok("ip addr");
            let line = out.lines().find(|l| l.contains(vip)).unwrap_or_default();
            if line.contains("dadfailed") {
                Ok(())
            } else {
                Err(out)
            }
        },
    );
}
