//! End-to-end: `ferrolb status`, `drain` and `undrain` against running daemons. The L2 lab with
//! gossip; every daemon is pointed at one private D-Bus (`FERROLB_DBUS_ADDRESS`, as the system
//! bus would be on a node): the first to start owns `io.ferrolb.Daemon1`, the others log that
//! the name is taken and run on. The CLI (`--bus`) reads that daemon's summary, Services and
//! members, drains it (its addresses move to another node) and undrains it.
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6`, `tcpdump` and `dbus-daemon`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::dbus::PrivateBus;
use common::gossip::*;
use common::l2::*;
use common::netlab::*;
use serde_json::Value;

fn ferrolb(bus: &PrivateBus, args: &[&str]) -> Result<String, String> {
    let out = Command::new(FERROLB)
        .args(args)
        .args(["--bus", &bus.address])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn json(bus: &PrivateBus, what: &str) -> Value {
    let text = ferrolb(bus, &["status", what, "--json"]).expect("ferrolb status --json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The node that answers for `web`'s address, per the status.
fn status_owner(bus: &PrivateBus) -> Option<String> {
    let services = json(bus, "services");
    let row = services
        .as_array()?
        .iter()
        .find(|r| r["service"] == "default/web")?;
    row["nodes"][0].as_str().map(str::to_string)
}

#[test]
fn status_drain_and_undrain_over_dbus() {
    let bus = PrivateBus::start();
    // The daemons inherit it. One test in this file: nothing else reads the variable.
    std::env::set_var("FERROLB_DBUS_ADDRESS", &bus.address);
    let l = L2Lab::start_with("flsts", 66, true);
    let address = gossip_web(&l);
    let speaker = l
        .nodes
        .iter()
        .find(|n| n.daemon.log_text().contains("D-Bus interface ready"))
        .expect("one daemon owns the bus name");
    let name = speaker.name.clone();

    let summary = wait_for(
        "the summary counts 3 members",
        Duration::from_secs(20),
        || {
            let s = ferrolb(&bus, &["status"])?;
            if s.contains("3/3 members") {
                Ok(s)
            } else {
                Err(s)
            }
        },
    );
    assert!(summary.contains("services"), "{summary}");
    let members = json(&bus, "members");
    let states: Vec<&str> = members
        .as_array()
        .expect("members array")
        .iter()
        .filter_map(|m| m["state"].as_str())
        .collect();
    assert_eq!(states, ["alive", "alive", "alive"], "{members}");
    let owner = wait_for("web in the status", Duration::from_secs(20), || {
        status_owner(&bus).ok_or_else(|| "no row yet".to_string())
    });
    let answering = l.who(&l.wait_arp_answer(address, Duration::from_secs(10)));
    assert!(
        answering.starts_with(&owner),
        "status says {owner}, ARP says {answering}"
    );
    let table = ferrolb(&bus, &["status", "services"]).expect("status services");
    assert!(
        table.contains(&address.to_string()) && table.contains("default/web"),
        "{table}"
    );

    println!("{name} speaks D-Bus; {owner} answers for {address}");
    // Drain the daemon that speaks D-Bus: it withdraws; if it owned web, web moves.
    ferrolb(&bus, &["drain", "--grace", "2s"]).expect("drain");
    wait_for("draining in the summary", Duration::from_secs(10), || {
        let s = ferrolb(&bus, &["status"])?;
        if s.contains("drain") {
            Ok(())
        } else {
            Err(s)
        }
    });
    // Which daemon wins the bus name is a race: when it owned web, web moves away; when not,
    // web stays where it was.
    wait_for(
        "web is with a node that is not drained",
        Duration::from_secs(10),
        || match status_owner(&bus) {
            Some(o) if o != name && (name == owner || o == owner) => Ok(()),
            other => Err(format!("owner {other:?}")),
        },
    );
    assert!(
        ferrolb(&bus, &["drain"]).is_err(),
        "a second drain must be refused"
    );
    ferrolb(&bus, &["undrain"]).expect("undrain");
    wait_for("undrained", Duration::from_secs(10), || {
        let s = ferrolb(&bus, &["status"])?;
        if s.contains("drain") {
            Err(s)
        } else {
            Ok(())
        }
    });
    l.assert_daemons_running();
}
