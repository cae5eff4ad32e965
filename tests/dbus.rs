//! The D-Bus interface over a private `dbus-daemon` whose config includes the shipped policy
//! (packaging/dbus/io.ferrolb.Daemon1.conf): `busctl` introspects, reads and calls it, the
//! `ferrolb status`/`drain` client talks to it, and the policy keeps other users read-only.
//! Needs `dbus-daemon`, `busctl` and `setpriv` (Debian: packages `dbus-daemon`, `systemd`,
//! `util-linux`).

use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::dbus::PrivateBus;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use ferrolb::host::dbus::{
    serve, Action, BgpSessionRow, DaemonStatus, DbusError, MemberRow, Request, ServiceRow,
    BUS_NAME, OBJECT_PATH,
};

/// A guard on waits that must end; a hang, not a slow run, is what it catches.
const HANG: Duration = Duration::from_secs(30);

fn sample_status() -> DaemonStatus {
    DaemonStatus {
        summary: "allocator; 2 services; 2/2 members; 1/2 BGP sessions up".into(),
        services: vec![
            ServiceRow {
                service: "default/web".into(),
                address: "192.0.2.10".into(),
                pool: "public".into(),
                mode: "l2".into(),
                nodes: vec!["worker-1".into()],
                reason: String::new(),
            },
            ServiceRow {
                service: "shop/api".into(),
                address: "192.0.2.20".into(),
                pool: "public".into(),
                mode: "bgp".into(),
                nodes: vec![],
                reason: "no BGP session established".into(),
            },
        ],
        members: vec![
            MemberRow {
                name: "worker-1".into(),
                address: "10.0.0.11:7946".into(),
                state: "alive".into(),
            },
            MemberRow {
                name: "worker-2".into(),
                address: "10.0.0.12:7946".into(),
                state: "alive".into(),
            },
        ],
        bgp_sessions: vec![
            BgpSessionRow {
                peer: "10.0.0.1".into(),
                state: "established".into(),
                uptime_seconds: 90,
                prefixes_sent: 1,
                last_error: String::new(),
            },
            BgpSessionRow {
                peer: "10.0.0.2".into(),
                state: "active".into(),
                uptime_seconds: 0,
                prefixes_sent: 0,
                last_error: "connection refused".into(),
            },
        ],
    }
}

/// The daemon's side in the tests: accepts everything but `Reload`, which it refuses as an
/// invalid configuration would; every request seen goes to the returned receiver.
fn fake_daemon() -> (mpsc::Sender<Request>, mpsc::UnboundedReceiver<Action>) {
    let (requests_tx, mut requests_rx) = mpsc::channel::<Request>(4);
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(request) = requests_rx.recv().await {
            let answer = match request.action {
                Action::Reload => Err(
                    "/etc/ferrolb/ferrolb.toml: pool \"public\" overlaps \"private\"".to_owned(),
                ),
                _ => Ok(()),
            };
            let _ = seen_tx.send(request.action);
            let _ = request.reply.send(answer);
        }
    });
    (requests_tx, seen_rx)
}

/// Runs a command off the async workers (the service answers on them).
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("command runs"))
        .await
        .expect("blocking task")
}

fn busctl(bus: &PrivateBus, args: &[&str]) -> Command {
    let mut command = Command::new("busctl");
    command.arg(format!("--address={}", bus.address)).args(args);
    command
}

fn ferrolb(bus: &PrivateBus, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrolb"));
    command.args(args).args(["--bus", &bus.address]);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn next_action(seen: &mut mpsc::UnboundedReceiver<Action>) -> Action {
    tokio::time::timeout(HANG, seen.recv())
        .await
        .expect("the request reached the daemon")
        .expect("the fake daemon runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busctl_introspects_reads_properties_and_calls_methods() {
    let bus = PrivateBus::start();
    let (_status_tx, status_rx) = watch::channel(sample_status());
    let (requests, mut seen) = fake_daemon();
    let _handle = serve(bus.target(), status_rx, requests)
        .await
        .expect("serve");

    let introspect = output(busctl(&bus, &["introspect", BUS_NAME, OBJECT_PATH])).await;
    assert!(introspect.status.success(), "{}", text(&introspect.stderr));
    let listing = text(&introspect.stdout);
    for line in [
        "io.ferrolb.Daemon1",
        ".Status",
        ".Services",
        ".Members",
        ".BgpSessions",
        ".Reload",
        ".Drain",
        ".Undrain",
        ".Restart",
    ] {
        assert!(listing.contains(line), "{line} missing from:\n{listing}");
    }
    let signature = |member: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(member))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(signature(".Status "), ".Status property s");
    assert_eq!(signature(".Services "), ".Services property a(ssssass)");
    assert_eq!(signature(".Members "), ".Members property a(sss)");
    assert_eq!(signature(".BgpSessions "), ".BgpSessions property a(sstus)");
    assert_eq!(signature(".Drain "), ".Drain method u");

    let status = output(busctl(
        &bus,
        &["get-property", BUS_NAME, OBJECT_PATH, BUS_NAME, "Status"],
    ))
    .await;
    assert_eq!(
        text(&status.stdout).trim(),
        "s \"allocator; 2 services; 2/2 members; 1/2 BGP sessions up\""
    );
    let members = output(busctl(
        &bus,
        &["get-property", BUS_NAME, OBJECT_PATH, BUS_NAME, "Members"],
    ))
    .await;
    assert_eq!(
        text(&members.stdout).trim(),
        "a(sss) 2 \"worker-1\" \"10.0.0.11:7946\" \"alive\" \"worker-2\" \"10.0.0.12:7946\" \"alive\""
    );

    let drain = output(busctl(
        &bus,
        &["call", BUS_NAME, OBJECT_PATH, BUS_NAME, "Drain", "u", "30"],
    ))
    .await;
    assert!(drain.status.success(), "{}", text(&drain.stderr));
    assert_eq!(
        next_action(&mut seen).await,
        Action::Drain {
            grace: Duration::from_secs(30)
        }
    );

    // A refusal reaches the caller as an error naming what failed.
    let reload = output(busctl(
        &bus,
        &["call", BUS_NAME, OBJECT_PATH, BUS_NAME, "Reload"],
    ))
    .await;
    assert!(!reload.status.success());
    assert!(
        text(&reload.stderr).contains("pool \"public\" overlaps \"private\""),
        "{}",
        text(&reload.stderr)
    );
    assert_eq!(next_action(&mut seen).await, Action::Reload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_snapshot_signals_only_the_properties_that_changed() {
    let bus = PrivateBus::start();
    let (status_tx, status_rx) = watch::channel(sample_status());
    let (requests, _seen) = fake_daemon();
    let _handle = serve(bus.target(), status_rx, requests)
        .await
        .expect("serve");

    let watcher = zbus::connection::Builder::address(bus.address.as_str())
        .expect("address")
        .build()
        .await
        .expect("watcher connects");
    let properties = zbus::fdo::PropertiesProxy::builder(&watcher)
        .destination(BUS_NAME)
        .expect("destination")
        .path(OBJECT_PATH)
        .expect("path")
        .build()
        .await
        .expect("properties proxy");
    let mut changes = properties
        .receive_properties_changed()
        .await
        .expect("subscribe");

    status_tx.send_modify(|status| {
        status.summary = "allocator; 2 services; 1/2 members; 1/2 BGP sessions up".into();
        status.members[1].state = "down".into();
    });
    let signal = tokio::time::timeout(HANG, changes.next())
        .await
        .expect("a PropertiesChanged signal")
        .expect("stream open");
    // One signal for the snapshot, carrying exactly what changed, with the new values.
    let args = signal.args().expect("signal args");
    assert_eq!(args.interface_name().as_str(), BUS_NAME);
    let mut changed: Vec<String> = args
        .changed_properties()
        .keys()
        .map(|k| k.to_string())
        .collect();
    changed.sort();
    let status = args
        .changed_properties()
        .get("Status")
        .map(|v| v.to_string());
    assert_eq!(
        status.as_deref(),
        Some("\"allocator; 2 services; 1/2 members; 1/2 BGP sessions up\"")
    );
    assert_eq!(changed, ["Members", "Status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrolb_status_and_drain_talk_to_the_daemon() {
    let bus = PrivateBus::start();
    let (_status_tx, status_rx) = watch::channel(sample_status());
    let (requests, mut seen) = fake_daemon();
    let _handle = serve(bus.target(), status_rx, requests)
        .await
        .expect("serve");

    let summary = output(ferrolb(&bus, &["status"])).await;
    assert!(summary.status.success(), "{}", text(&summary.stderr));
    assert_eq!(
        text(&summary.stdout),
        "Status:        allocator; 2 services; 2/2 members; 1/2 BGP sessions up\n\
         Services:      2 (1 announced, 1 not announced)\n\
         Members:       2 (2 alive)\n\
         BGP sessions:  2 (1 established)\n"
    );

    let bgp = output(ferrolb(&bus, &["status", "bgp"])).await;
    assert_eq!(
        text(&bgp.stdout),
        "PEER      STATE        UPTIME  PREFIXES  LAST ERROR\n\
         10.0.0.1  established  1m 30s  1         -\n\
         10.0.0.2  active       -       0         connection refused\n"
    );

    let json = output(ferrolb(&bus, &["status", "services", "--json"])).await;
    assert!(json.status.success(), "{}", text(&json.stderr));
    let services: Vec<ServiceRow> =
        serde_json::from_slice(&json.stdout).expect("status services --json is JSON");
    assert_eq!(services, sample_status().services);

    let drain = output(ferrolb(&bus, &["drain", "--grace", "5s"])).await;
    assert!(drain.status.success(), "{}", text(&drain.stderr));
    assert_eq!(
        next_action(&mut seen).await,
        Action::Drain {
            grace: Duration::from_secs(5)
        }
    );

    let reload = output(ferrolb(&bus, &["reload"])).await;
    assert!(!reload.status.success());
    assert_eq!(
        text(&reload.stderr),
        "Reload failed: /etc/ferrolb/ferrolb.toml: pool \"public\" overlaps \"private\"\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrolb_status_says_when_the_daemon_is_not_running() {
    let bus = PrivateBus::start();
    let status = output(ferrolb(&bus, &["status"])).await;
    assert!(!status.status.success());
    assert!(status.stdout.is_empty());
    assert_eq!(
        text(&status.stderr),
        format!(
            "ferrolb is not running (no io.ferrolb.Daemon1 on the bus at {})\n",
            bus.address
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_cannot_take_the_name() {
    let bus = PrivateBus::start();
    let (_status_tx, status_rx) = watch::channel(sample_status());
    let (requests, _seen) = fake_daemon();
    let _first = serve(bus.target(), status_rx.clone(), requests.clone())
        .await
        .expect("serve");
    let second = serve(bus.target(), status_rx, requests).await;
    assert!(
        matches!(second, Err(DbusError::NameTaken { .. })),
        "{second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_lets_other_users_read_but_not_call() {
    let bus = PrivateBus::start();
    let (_status_tx, status_rx) = watch::channel(sample_status());
    let (requests, mut seen) = fake_daemon();
    let _handle = serve(bus.target(), status_rx, requests)
        .await
        .expect("serve");
    let as_nobody = |args: &[&str]| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "busctl"])
            .arg(format!("--address={}", bus.address))
            .args(args);
        command
    };

    let read = output(as_nobody(&[
        "get-property",
        BUS_NAME,
        OBJECT_PATH,
        BUS_NAME,
        "Status",
    ]))
    .await;
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert!(text(&read.stdout).contains("allocator;"));

    let call = output(as_nobody(&[
        "call",
        BUS_NAME,
        OBJECT_PATH,
        BUS_NAME,
        "Drain",
        "u",
        "30",
    ]))
    .await;
    assert!(!call.status.success());
    assert!(
        text(&call.stderr).to_lowercase().contains("access denied"),
        "{}",
        text(&call.stderr)
    );
    // Root may call; the first request the daemon sees is root's, not nobody's.
    let undrain = output(busctl(
        &bus,
        &["call", BUS_NAME, OBJECT_PATH, BUS_NAME, "Undrain"],
    ))
    .await;
    assert!(undrain.status.success(), "{}", text(&undrain.stderr));
    assert_eq!(next_action(&mut seen).await, Action::Undrain);
}
