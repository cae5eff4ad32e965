//! FRR (`zebra` + `bgpd`) as the router of a lab namespace, run directly as NETLAB.md
//! describes (no systemd; one state directory owned by `frr`; the same zserv path for both
//! daemons; no TCP vty ports), and its view through `vtysh` JSON and the kernel FIB.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::netlab::*;

/// FRR in the router namespace.
pub struct Frr {
    ns: String,
    dir: PathBuf,
    bgpd: std::cell::Cell<Proc>,
}

impl Frr {
    /// Starts zebra and bgpd in `router` with `bgpd_conf` (NETLAB.md: same `-z` path for
    /// both, `-P 0`, a state directory owned by `frr`).
    pub fn start(lab: &Lab, router: &Host, bgpd_conf: &str) -> Frr {
        require_program("vtysh");
        let dir = lab.path("frr");
        std::fs::create_dir_all(&dir).unwrap();
        // The daemons drop to `frr` and must reach their directory inside the lab's.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(lab.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::write(dir.join("zebra.conf"), "hostname router\n").unwrap();
        std::fs::write(dir.join("bgpd.conf"), bgpd_conf).unwrap();
        std::fs::write(
            dir.join("vtysh.conf"),
            "no service integrated-vtysh-config\n",
        )
        .unwrap();
        Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(&dir)
            .status()
            .expect("chown");
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let zserv = d("zserv.api");
        let zebra_args = [
            "-d",
            "-u",
            "frr",
            "-g",
            "frr",
            "-f",
            &d("zebra.conf"),
            "-i",
            &d("zebra.pid"),
            "-z",
            &zserv,
            "--vty_socket",
            &d(""),
            "-P",
            "0",
            "--log",
            &format!("file:{}", d("zebra.log")),
        ];
        lab.exec(&router.ns, "/usr/lib/frr/zebra", &zebra_args)
            .expect_ok("zebra");
        let frr = Frr {
            ns: router.ns.clone(),
            dir: dir.clone(),
            bgpd: std::cell::Cell::new(Frr::spawn_bgpd(lab, router, &dir)),
        };
        frr.wait_up(lab);
        frr
    }

    fn spawn_bgpd(lab: &Lab, router: &Host, dir: &std::path::Path) -> Proc {
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        lab.spawn(
            &router.ns,
            "/usr/lib/frr/bgpd",
            &[
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &d("bgpd.conf"),
                "-i",
                &d("bgpd.pid"),
                "-z",
                &d("zserv.api"),
                "--vty_socket",
                &d(""),
                "-P",
                "0",
                "--log",
                &format!("file:{}", d("bgpd.log")),
            ],
            &dir.join("bgpd.out"),
        )
    }

    /// Stops bgpd (SIGTERM: it closes its sessions) and starts it again.
    pub fn restart_bgpd(&self, lab: &Lab, router: &Host) {
        lab.terminate(self.bgpd.get(), Duration::from_secs(20));
        self.bgpd.set(Frr::spawn_bgpd(lab, router, &self.dir));
        self.wait_up(lab);
    }

    /// The bgpd process.
    pub fn bgpd(&self) -> Proc {
        self.bgpd.get()
    }

    /// Waits until bgpd answers on its vty socket.
    pub fn wait_up(&self, lab: &Lab) {
        let d = self.dir.to_string_lossy().into_owned();
        wait_for("bgpd answering vtysh", Duration::from_secs(15), || {
            let out = lab.exec(
                &self.ns,
                "vtysh",
                &[
                    "--vty_socket",
                    &d,
                    "--config_dir",
                    &d,
                    "-c",
                    "show bgp summary",
                ],
            );
            if out.ok {
                Ok(())
            } else {
                Err(out.stderr)
            }
        });
    }

    pub fn vtysh(&self, lab: &Lab, cmd: &str) -> String {
        let d = self.dir.to_string_lossy().into_owned();
        lab.exec(
            &self.ns,
            "vtysh",
            &["--vty_socket", &d, "--config_dir", &d, "-c", cmd],
        )
        .expect_ok(cmd)
    }

    pub fn json(&self, lab: &Lab, cmd: &str) -> Value {
        let text = self.vtysh(lab, cmd);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{cmd}: {e}: {text}"))
    }

    /// The next hops FRR holds for `prefix` (every path), sorted.
    pub fn paths(&self, lab: &Lab, prefix: &str) -> Vec<String> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.json(lab, &format!("show bgp {family} unicast {prefix} json"));
        let mut hops: Vec<String> = v["paths"]
            .as_array()
            .map(|paths| {
                paths
                    .iter()
                    .filter_map(|p| p["nexthops"][0]["ip"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        hops.sort();
        hops
    }

    /// The next hops of `prefix` in the router's kernel FIB.
    pub fn fib(&self, lab: &Lab, prefix: &str) -> Vec<String> {
        let flag = if prefix.contains(':') { "-6" } else { "-4" };
        let out = lab
            .exec(&self.ns, "ip", &[flag, "-j", "route", "show", prefix])
            .expect_ok("ip route");
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let mut hops: Vec<String> = Vec::new();
        for route in v.as_array().into_iter().flatten() {
            if let Some(gw) = route["gateway"].as_str() {
                hops.push(gw.to_string());
            }
            for nh in route["nexthops"].as_array().into_iter().flatten() {
                if let Some(gw) = nh["gateway"].as_str() {
                    hops.push(gw.to_string());
                }
            }
        }
        hops.sort();
        hops
    }

    /// The state of the session with `neighbor`, and why it last went down.
    pub fn neighbor(&self, lab: &Lab, neighbor: &str) -> (String, String) {
        let v = self.json(lab, &format!("show bgp neighbor {neighbor} json"));
        let n = &v[neighbor];
        (
            n["bgpState"].as_str().unwrap_or("").to_string(),
            n["lastResetDueTo"].as_str().unwrap_or("").to_string(),
        )
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        // zebra leaves nexthop objects behind (NETLAB.md); the namespace goes with the lab.
        let _ = Command::new("ip")
            .args(["-n", &self.ns, "nexthop", "flush"])
            .stdout(std::process::Stdio::null())
            .status();
        for pid in ["zebra.pid", "bgpd.pid"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(pid)) {
                let _ = Command::new("kill").arg(text.trim()).status();
            }
        }
    }
}
