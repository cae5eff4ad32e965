//! The L2 speaker in network namespaces, driven directly (no daemon, no Kubernetes): a LAN
//! bridge, node namespaces each running a [`Speaker`] on a thread that entered the namespace,
//! and a client namespace that asks with `arping`/`ndisc6` and keeps neighbour entries.
//!
//! Addresses: 10.250.60-63.0/24 and fd00:250:60-63::/64, one subnet per test; namespaces
//! `fl2s-*` (see `common::netlab`).

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferrolb::l2::{Announcement, Counters, L2Event, Speaker, SpeakerSettings};
use serde_json::Value;
use tokio::sync::mpsc;

use common::netlab::{require_program, wait_for, Host, Lab};

const WAIT: Duration = Duration::from_secs(10);

// === a Speaker inside a namespace ===

enum Command {
    Set(BTreeMap<IpAddr, Vec<String>>, std_mpsc::Sender<()>),
    Counters(std_mpsc::Sender<Counters>),
    Snapshot(std_mpsc::Sender<Vec<Announcement>>),
}

/// A [`Speaker`] running on its own thread inside a node's network namespace (the thread
/// enters it with `setns`; the current-thread runtime it builds, and the responder threads the
/// speaker starts, inherit it).
struct NodeSpeaker {
    name: String,
    commands: Option<mpsc::UnboundedSender<Command>>,
    events: std_mpsc::Receiver<L2Event>,
    /// Events received and not yet matched by [`NodeSpeaker::wait_event`].
    backlog: RefCell<Vec<L2Event>>,
    thread: Option<JoinHandle<()>>,
}

fn enter_netns(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}")).expect("namespace file");
    // SAFETY: setns(2) on a valid descriptor; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

impl NodeSpeaker {
    fn start(host: &Host, settings: SpeakerSettings) -> NodeSpeaker {
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Command>();
        let (ev_tx, ev_rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let ns = host.ns.clone();
        let thread = std::thread::Builder::new()
            .name(format!("speaker-{}", host.name))
            .spawn(move || {
                enter_netns(&ns);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let (events, mut events_rx) = mpsc::unbounded_channel();
                    let mut speaker = Speaker::start(settings, events).await.expect("speaker");
                    let _ = ready_tx.send(());
                    loop {
                        tokio::select! {
                            command = cmd_rx.recv() => match command {
                                Some(Command::Set(desired, ack)) => {
                                    speaker.set(desired);
                                    let _ = ack.send(());
                                }
                                Some(Command::Counters(reply)) => {
                                    let _ = reply.send(speaker.counters());
                                }
                                Some(Command::Snapshot(reply)) => {
                                    let _ = reply.send(speaker.snapshot());
                                }
                                None => break,
                            },
                            Some(event) = events_rx.recv() => {
                                let _ = ev_tx.send(event);
                            }
                        }
                    }
                    speaker.stop().await;
                });
            })
            .expect("speaker thread");
        ready_rx
            .recv_timeout(WAIT)
            .expect("speaker started in the namespace");
        NodeSpeaker {
            name: host.name.clone(),
            commands: Some(cmd_tx),
            events: ev_rx,
            backlog: RefCell::new(Vec::new()),
            thread: Some(thread),
        }
    }

    fn send(&self, command: Command) {
        self.commands
            .as_ref()
            .expect("running")
            .send(command)
            .expect("speaker thread alive");
    }

    /// `Speaker::set`; returns once `set` has returned.
    fn set(&self, desired: &[(&str, &[&str])]) {
        let map = desired
            .iter()
            .map(|(a, ifs)| {
                (
                    a.parse().expect("address"),
                    ifs.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Set(map, tx));
        rx.recv_timeout(WAIT).expect("set returned");
    }

    fn counters(&self) -> Counters {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Counters(tx));
        rx.recv_timeout(WAIT).expect("counters")
    }

    fn snapshot(&self) -> Vec<Announcement> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Snapshot(tx));
        rx.recv_timeout(WAIT).expect("snapshot")
    }

    /// Waits for an event matching `f` (the first such, in order); others stay for later.
    fn wait_event(&self, what: &str, f: impl Fn(&L2Event) -> bool) -> L2Event {
        let deadline = Instant::now() + WAIT;
        let mut backlog = self.backlog.borrow_mut();
        if let Some(i) = backlog.iter().position(&f) {
            return backlog.remove(i);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if f(&e) => return e,
                Ok(e) => backlog.push(e),
                Err(_) => panic!("{}: no event {what}; seen: {backlog:?}", self.name),
            }
        }
    }

    /// Every event not yet matched (without waiting).
    fn drain_events(&self) -> Vec<L2Event> {
        let mut all = std::mem::take(&mut *self.backlog.borrow_mut());
        all.extend(self.events.try_iter());
        all
    }
}

impl Drop for NodeSpeaker {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// === the client's view ===

fn mac_of(lab: &Lab, ns: &str, dev: &str) -> String {
    let out = lab
        .exec(ns, "ip", &["-j", "link", "show", dev])
        .expect_ok("ip link");
    let v: Value = serde_json::from_str(&out).expect("ip -j link");
    v[0]["address"].as_str().expect("address").to_lowercase()
}

/// The MAC `arping` (one request, one second) resolves `address` to, or `None`.
fn arping(lab: &Lab, client: &Host, address: &str) -> Option<String> {
    let out = lab.exec(
        &client.ns,
        "arping",
        &["-r", "-c1", "-w1", "-i", "eth0", address],
    );
    out.ok
        .then(|| out.stdout.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

/// The MAC `ndisc6` (one solicitation) resolves `address` to, or `None`.
fn ndisc(lab: &Lab, client: &Host, address: &str) -> Option<String> {
    let out = lab.exec(&client.ns, "ndisc6", &["-q", "-1", "-r1", address, "eth0"]);
    out.ok
        .then(|| out.stdout.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

/// The link-layer address of the client's neighbour entry for `address`, if it has one.
fn neighbour(lab: &Lab, client: &Host, address: &str) -> Option<String> {
    let out = lab
        .exec(
            &client.ns,
            "ip",
            &["-j", "neigh", "show", address, "dev", "eth0"],
        )
        .expect_ok("ip neigh");
    let v: Value = serde_json::from_str(&out).ok()?;
    v[0]["lladdr"].as_str().map(str::to_lowercase)
}

/// Sends `count` UDP datagrams from `ns` to `address` (discard port): a neighbour entry for it
/// appears on the way, and it is traffic the responders must not see.
fn udp(lab: &Lab, ns: &str, address: &str, count: u32) {
    let family = if address.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    };
    let script = format!(
        "import socket\ns = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
         for _ in range({count}):\n    s.sendto(b'x' * 64, ('{address}', 9))\n"
    );
    lab.exec(ns, "python3", &["-c", &script])
        .expect_ok("python3 udp");
}

/// Whether `dev` in `ns` is a member of the IPv6 multicast `group` (kernel's `/proc/net/igmp6`).
fn joined(lab: &Lab, ns: &str, dev: &str, group: &str) -> bool {
    let group: std::net::Ipv6Addr = group.parse().expect("group");
    let hex: String = group.octets().iter().map(|b| format!("{b:02x}")).collect();
    lab.exec(ns, "cat", &["/proc/net/igmp6"])
        .expect_ok("igmp6")
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&dev) && f.get(2) == Some(&hex.as_str())
        })
}

fn rx_packets(lab: &Lab, ns: &str, dev: &str) -> u64 {
    let out = lab
        .exec(ns, "ip", &["-j", "-s", "link", "show", dev])
        .expect_ok("ip -s link");
    let v: Value = serde_json::from_str(&out).expect("ip -j -s link");
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .expect("rx packets")
}

fn tools() {
    for p in ["arping", "ndisc6", "python3"] {
        require_program(p);
    }
}

fn announcing(address: &str, interfaces: &[&str]) -> impl Fn(&L2Event) -> bool {
    let address: IpAddr = address.parse().expect("address");
    let interfaces: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
    move |e| matches!(e, L2Event::Announcing { address: a, interfaces: i } if *a == address && *i == interfaces)
}

// === tests ===

/// ARP and NDP are answered from the node's MAC for what is set, and no longer once `set`
/// removed it; the kernel check stays silent with arp_ignore=1 and warns with 0.
#[test]
fn answers_follow_set() {
    tools();
    let lab = Lab::new("fl2s-set");
    let client = lab.host("client", "10.250.60.3/24", Some("fd00:250:60::3/64"));
    let n1 = lab.host("n1", "10.250.60.11/24", Some("fd00:250:60::11/64"));
    let mac = mac_of(&lab, &n1.ns, "eth0");
    let speaker = NodeSpeaker::start(&n1, SpeakerSettings::default());

    // Before: nobody answers.
    assert_eq!(arping(&lab, &client, "10.250.60.100"), None);

    // The test setup for kube-proxy stand-ins: the address on lo, arp_ignore=1: no warning.
    lab.exec(
        &n1.ns,
        "ip",
        &["addr", "add", "10.250.60.100/32", "dev", "lo"],
    )
    .expect_ok("addr on lo");
    speaker.set(&[("10.250.60.100", &[]), ("fd00:250:60::100", &[])]);
    speaker.wait_event("announcing v4", announcing("10.250.60.100", &["eth0"]));
    speaker.wait_event("announcing v6", announcing("fd00:250:60::100", &["eth0"]));

    assert_eq!(
        arping(&lab, &client, "10.250.60.100").as_deref(),
        Some(mac.as_str())
    );
    assert_eq!(
        ndisc(&lab, &client, "fd00:250:60::100").as_deref(),
        Some(mac.as_str())
    );
    // The solicited-node group of the IPv6 address is joined through the IP stack.
    let group = "ff02::1:ff00:100";
    assert!(
        joined(&lab, &n1.ns, "eth0", group),
        "solicited-node group joined"
    );
    let c = speaker.counters();
    assert!(c.arp_replies >= 1 && c.na_replies >= 1, "{c:?}");
    assert!(
        c.gratuitous_arp_sent >= 2 && c.unsolicited_na_sent >= 1,
        "{c:?}"
    );
    assert_eq!(c.malformed, 0, "{c:?}");
    assert_eq!(
        speaker.snapshot(),
        vec![
            Announcement {
                address: "10.250.60.100".parse().unwrap(),
                interfaces: vec!["eth0".into()]
            },
            Announcement {
                address: "fd00:250:60::100".parse().unwrap(),
                interfaces: vec!["eth0".into()]
            },
        ]
    );
    // An address of another subnet, and one restricted to an interface that does not exist.
    speaker.set(&[
        ("10.250.60.100", &[]),
        ("fd00:250:60::100", &[]),
        ("192.0.2.7", &[]),
        ("10.250.60.101", &["eth9"]),
    ]);
    speaker.wait_event(
        "no interface",
        |e| matches!(e, L2Event::NoInterface { address } if address.to_string() == "192.0.2.7"),
    );
    speaker.wait_event(
        "no interface",
        |e| matches!(e, L2Event::NoInterface { address } if address.to_string() == "10.250.60.101"),
    );
    assert!(
        !speaker
            .drain_events()
            .iter()
            .any(|e| matches!(e, L2Event::KernelWouldAnswer { .. })),
        "arp_ignore=1: the kernel stays silent, no warning"
    );

    // Removed: not answered once set has returned (no grace period).
    speaker.set(&[("fd00:250:60::100", &[])]);
    assert_eq!(arping(&lab, &client, "10.250.60.100"), None);
    assert_eq!(
        ndisc(&lab, &client, "fd00:250:60::100").as_deref(),
        Some(mac.as_str())
    );
    assert!(joined(&lab, &n1.ns, "eth0", group));
    speaker.set(&[]);
    assert!(
        !joined(&lab, &n1.ns, "eth0", group),
        "group left with its address"
    );
    assert_eq!(ndisc(&lab, &client, "fd00:250:60::100"), None);
    assert_eq!(arping(&lab, &client, "10.250.60.100"), None);
    assert!(speaker.snapshot().is_empty());

    // With arp_ignore=0 the kernel would answer for the address on lo: warned.
    lab.sysctl(
        &n1.ns,
        &[
            ("net.ipv4.conf.all.arp_ignore", "0"),
            ("net.ipv4.conf.eth0.arp_ignore", "0"),
        ],
    );
    speaker.set(&[("10.250.60.100", &[])]);
    let warning = speaker.wait_event("kernel would answer", |e| {
        matches!(e, L2Event::KernelWouldAnswer { .. })
    });
    let L2Event::KernelWouldAnswer {
        address,
        interface,
        detail,
    } = warning
    else {
        unreachable!()
    };
    assert_eq!(address.to_string(), "10.250.60.100");
    assert_eq!(interface, "eth0");
    assert!(
        detail.contains("lo") && detail.contains("arp_ignore=0"),
        "{detail}"
    );
    assert_eq!(speaker.counters().kernel_would_answer, 1);
}

/// Interfaces and addresses appearing, going down and coming back (rtnetlink events) change
/// where an address is answered.
#[test]
fn interface_changes_move_announcements() {
    tools();
    let lab = Lab::new("fl2s-if");
    let client = lab.host("client", "10.250.61.3/24", None);
    let n1 = lab.host("n1", "10.250.61.11/24", None);
    let mac = mac_of(&lab, &n1.ns, "eth0");
    let speaker = NodeSpeaker::start(&n1, SpeakerSettings::default());
    lab.exec(
        &client.ns,
        "ip",
        &["addr", "add", "10.250.161.3/24", "dev", "eth0"],
    )
    .expect_ok("client second subnet");

    // Outside every subnet of the node: nothing to announce it on.
    speaker.set(&[("10.250.161.100", &[])]);
    speaker.wait_event("no interface", |e| matches!(e, L2Event::NoInterface { .. }));
    assert_eq!(arping(&lab, &client, "10.250.161.100"), None);

    // The node gets an address in that subnet: announced there.
    lab.exec(
        &n1.ns,
        "ip",
        &["addr", "add", "10.250.161.11/24", "dev", "eth0"],
    )
    .expect_ok("node second subnet");
    speaker.wait_event("announcing", announcing("10.250.161.100", &["eth0"]));
    assert_eq!(
        arping(&lab, &client, "10.250.161.100").as_deref(),
        Some(mac.as_str())
    );

    // The interface goes down: no longer announced; back up: announced again (with a burst).
    lab.exec(&n1.ns, "ip", &["link", "set", "eth0", "down"])
        .expect_ok("link down");
    speaker.wait_event("no interface", |e| matches!(e, L2Event::NoInterface { .. }));
    assert_eq!(speaker.snapshot()[0].interfaces, Vec::<String>::new());
    let before = speaker.counters().gratuitous_arp_sent;
    lab.exec(&n1.ns, "ip", &["link", "set", "eth0", "up"])
        .expect_ok("link up");
    speaker.wait_event("announcing again", announcing("10.250.161.100", &["eth0"]));
    assert!(speaker.counters().gratuitous_arp_sent > before);
    // An interface that is down answers nothing, so the route back may need a moment.
    let mac_seen = wait_for("an answer after link up", WAIT, || {
        arping(&lab, &client, "10.250.161.100").ok_or_else(|| "no answer".to_string())
    });
    assert_eq!(mac_seen, mac);

    // The address that put it in the subnet goes away: not announced any more.
    lab.exec(
        &n1.ns,
        "ip",
        &["addr", "del", "10.250.161.11/24", "dev", "eth0"],
    )
    .expect_ok("node address removed");
    speaker.wait_event("no interface", |e| matches!(e, L2Event::NoInterface { .. }));
    assert_eq!(arping(&lab, &client, "10.250.161.100"), None);
}

/// A client that already has a neighbour entry for the address sees it move to the new owner
/// by the gratuitous ARP / unsolicited NA alone: it asks nothing (the new owner answered no
/// request) when its entry changes.
#[test]
fn takeover_updates_a_clients_neighbour_entry() {
    tools();
    let lab = Lab::new("fl2s-move");
    let client = lab.host("client", "10.250.62.3/24", Some("fd00:250:62::3/64"));
    let n1 = lab.host("n1", "10.250.62.11/24", Some("fd00:250:62::11/64"));
    let n2 = lab.host("n2", "10.250.62.12/24", Some("fd00:250:62::12/64"));
    let (mac1, mac2) = (mac_of(&lab, &n1.ns, "eth0"), mac_of(&lab, &n2.ns, "eth0"));
    let s1 = NodeSpeaker::start(&n1, SpeakerSettings::default());
    let s2 = NodeSpeaker::start(&n2, SpeakerSettings::default());
    let (v4, v6) = ("10.250.62.100", "fd00:250:62::100");

    s1.set(&[(v4, &[]), (v6, &[])]);
    s1.wait_event("n1 announcing", announcing(v6, &["eth0"]));
    // The client talks to the address: its kernel resolves it to n1.
    udp(&lab, &client.ns, v4, 1);
    udp(&lab, &client.ns, v6, 1);
    for a in [v4, v6] {
        wait_for("client's entry at n1", WAIT, || {
            match neighbour(&lab, &client, a) {
                Some(m) if m == mac1 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    // The address moves: n1 lets go, n2 takes it.
    s1.set(&[]);
    let released = s1.counters();
    let moved = Instant::now();
    s2.set(&[(v4, &[]), (v6, &[])]);
    for a in [v4, v6] {
        wait_for("client's entry at n2", WAIT, || {
            match neighbour(&lab, &client, a) {
                Some(m) if m == mac2 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let took = moved.elapsed();
    let c2 = s2.counters();
    assert_eq!(
        (c2.arp_replies, c2.na_replies),
        (0, 0),
        "the client asked nothing: the announcements alone moved its entries"
    );
    assert!(
        c2.gratuitous_arp_sent >= 2 && c2.unsolicited_na_sent >= 1,
        "{c2:?}"
    );
    eprintln!("client neighbour entries moved {took:?} after the takeover");
    assert_eq!(arping(&lab, &client, v4).as_deref(), Some(mac2.as_str()));

    // The repeats: the whole burst (t = 0, 1.1, 2.2, 3.3, 4.4 s) goes out from n2, and none of
    // n1's remaining repeats once it let go.
    wait_for("n2's whole burst", WAIT, || {
        let c = s2.counters();
        match (c.gratuitous_arp_sent, c.unsolicited_na_sent) {
            (10, 5) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let burst = moved.elapsed();
    assert!(burst >= Duration::from_millis(4400), "{burst:?}");
    let c1 = s1.counters();
    assert_eq!(
        (c1.gratuitous_arp_sent, c1.unsolicited_na_sent),
        (released.gratuitous_arp_sent, released.unsolicited_na_sent),
        "n1 stopped announcing when it let go"
    );
    assert!(
        released.gratuitous_arp_sent < 10,
        "n1 let go before its burst ended"
    );
}

/// The socket filters keep other traffic away from the responders: a flood of IPv4 and IPv6
/// datagrams to the node crosses its interface while the responder threads read (almost)
/// nothing — only the few ARP/NS requests the flood itself causes.
#[test]
fn socket_filters_keep_other_traffic_off_the_responders() {
    tools();
    let lab = Lab::new("fl2s-bpf");
    let client = lab.host("client", "10.250.63.3/24", Some("fd00:250:63::3/64"));
    let n1 = lab.host("n1", "10.250.63.11/24", Some("fd00:250:63::11/64"));
    let speaker = NodeSpeaker::start(&n1, SpeakerSettings::default());
    speaker.set(&[("10.250.63.100", &[]), ("fd00:250:63::100", &[])]);
    speaker.wait_event("announcing", announcing("fd00:250:63::100", &["eth0"]));
    // Both responders are up and reading: they answer.
    assert!(arping(&lab, &client, "10.250.63.100").is_some());
    assert!(ndisc(&lab, &client, "fd00:250:63::100").is_some());

    let before = speaker.counters();
    let rx_before = rx_packets(&lab, &n1.ns, "eth0");
    const FLOOD: u32 = 5000;
    udp(&lab, &client.ns, "10.250.63.11", FLOOD);
    udp(&lab, &client.ns, "fd00:250:63::11", FLOOD);
    let rx = rx_packets(&lab, &n1.ns, "eth0") - rx_before;
    let after = speaker.counters();
    let read = after.frames_read - before.frames_read;
    eprintln!("flood: {rx} frames received by the node, {read} read by the responders");
    assert!(
        rx >= u64::from(2 * FLOOD),
        "the flood reached the node: {rx}"
    );
    assert!(
        read <= 20,
        "the responders read {read} frames of the flood: {after:?}"
    );
    assert_eq!(after.malformed, 0);
}
