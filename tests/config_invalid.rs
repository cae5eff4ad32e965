//! `ferrolb check-config` on real files: a table of invalid configurations (each must exit 1
//! and name the key path, and the file and line where one can be given), and the cases that
//! must pass (the shipped default, warnings, conf.d, environment, `FERROLB_CONFIG`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb");

/// Appended to examples that have no `[cluster]` table, so gossip needs no key file (appended,
/// so line numbers are those of the example).
const QUIET: &str = "\n[cluster]\nenabled = false\n";

/// Where an error must be reported.
#[derive(Debug, Clone, Copy)]
enum At {
    /// The main file, at this line.
    Main(usize),
    /// A conf.d file, at this line.
    ConfD(&'static str, usize),
    /// An environment variable.
    Env(&'static str),
}

struct Case {
    name: &'static str,
    main: &'static str,
    conf_d: &'static [(&'static str, &'static str)],
    env: &'static [(&'static str, &'static str)],
    /// Every error that must be reported: where, key path, a fragment of the message.
    expect: &'static [(At, &'static str, &'static str)],
}

const fn case(
    name: &'static str,
    main: &'static str,
    expect: &'static [(At, &'static str, &'static str)],
) -> Case {
    Case {
        name,
        main,
        conf_d: &[],
        env: &[],
        expect,
    }
}

const POOL: &str = "[[pool]]\nname = \"default\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/24\"]\n";

fn cases() -> Vec<Case> {
    use At::*;
    vec![
        // --- TOML syntax ------------------------------------------------------------------
        case("unclosed table header", "[log\nlevel = \"info\"\n", &[(Main(1), "log", "TOML syntax error")]),
        case("value missing", "[log]\nlevel =\n", &[(Main(2), "log.level", "TOML syntax error")]),
        case("unquoted string", "[log]\nformat = json\n", &[(Main(2), "log.format", "TOML syntax error")]),
        case(
            "duplicate key",
            "[[pool]]\nname = \"a\"\nname = \"b\"\n",
            &[(Main(3), "pool[0].name", "TOML syntax error")],
        ),
        case(
            "unclosed array over lines",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\",\n  \"10.0.0.2\"\n\n[log]\n",
            &[(Main(7), "pool[0].addresses", "the value of `addresses` (line 4) is not closed")],
        ),
        // --- unknown and misplaced keys, wrong types ------------------------------------------
        case("unknown table", "[pools]\nname = \"a\"\n", &[(Main(1), "pools", "did you mean `pool`?")]),
        case("typo in a key", "[log]\nlevle = \"debug\"\n", &[(Main(2), "log.levle", "did you mean `level`?")]),
        case(
            "peer key in a pool",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\nhold_time = \"90s\"\n",
            &[(Main(5), "pool[0].hold_time", "is a key of [[bgp.peer]]")],
        ),
        case(
            "pool key under [pool.bgp]",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\nlocal_pref = 10\nauto_assign = false\n",
            &[(Main(11), "pool[0].bgp.auto_assign", "is a key of [[pool]]")],
        ),
        case(
            "addresses not an array",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = \"10.0.0.0/24\"\n",
            &[(Main(4), "pool[0].addresses", "expected an array")],
        ),
        case("unknown mode", "[[pool]]\nname = \"a\"\nmode = \"l3\"\naddresses = [\"10.0.0.1\"]\n", &[(Main(3), "pool[0].mode", "expected \"l2\" or \"bgp\"")]),
        case("bad log format", "[log]\nformat = \"xml\"\n", &[(Main(2), "log.format", "\"text\" or \"json\"")]),
        case("bad failback", "[l2]\nfailback = \"never\"\n", &[(Main(2), "l2.failback", "\"sticky\" or \"immediate\"")]),
        // --- durations, addresses, names ------------------------------------------------------
        case("duration without unit", "[kubernetes]\nlease_duration = 15\n", &[(Main(2), "kubernetes.lease_duration", "no unit; add one, like \"15s\"")]),
        case("duration nonsense", "[kubernetes]\nretry_period = \"soon\"\n", &[(Main(2), "kubernetes.retry_period", "not a duration")]),
        case("bind without port", "[cluster]\nenabled = false\nbind = \"0.0.0.0\"\n", &[(Main(3), "cluster.bind", "host:port")]),
        case("bad join entry", "[cluster]\nenabled = false\njoin = [\"node one\"]\n", &[(Main(3), "cluster.join[0]", "host name")]),
        case("metrics address", "[metrics]\nlisten = \"everywhere:7472\"\n", &[(Main(2), "metrics.listen", "\"\" to disable")]),
        case("bad log level", "[log]\nlevel = \"loud\"\n", &[(Main(2), "log.level", "trace, debug, info")]),
        case("server not a URL", "[kubernetes]\nserver = \"10.0.0.1:6443\"\n", &[(Main(2), "kubernetes.server", "http(s) URL")]),
        case(
            "kubeconfig and server",
            "[kubernetes]\nkubeconfig = \"/etc/k\"\nserver = \"https://10.0.0.1:6443\"\n",
            &[(Main(3), "kubernetes.server", "exclude each other")],
        ),
        case(
            "renew deadline not below lease",
            "[kubernetes]\nlease_duration = \"10s\"\nrenew_deadline = \"10s\"\n",
            &[(Main(3), "kubernetes.renew_deadline", "must be shorter than lease_duration")],
        ),
        case("node name", "[node]\nname = \"Worker 1\"\n", &[(Main(2), "node.name", "Kubernetes Node name")]),
        case(
            "gossip without key",
            "[cluster]\nbind = \"0.0.0.0:7946\"\n",
            &[(Main(1), "cluster.secret_file", "gossip must be encrypted: set cluster.secret_file, or cluster.insecure = true")],
        ),
        // --- pools -------------------------------------------------------------------------
        case("malformed CIDR", "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/33\"]\n", &[(Main(4), "pool[0].addresses[0]", "not an address range")]),
        case(
            "range backwards",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\n  \"10.0.0.1\",\n  \"10.0.0.9-10.0.0.2\",\n]\n",
            &[(Main(6), "pool[0].addresses[1]", "ends before it starts; write the lower address first")],
        ),
        case("range mixing families", "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1-fd00::1\"]\n", &[(Main(4), "pool[0].addresses[0]", "mixes IPv4 and IPv6")]),
        case("pool without addresses", "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = []\n", &[(Main(4), "pool[0].addresses", "no addresses")]),
        case(
            "overlap within a pool",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/24\", \"10.0.0.100\"]\n",
            &[(Main(4), "pool[0].addresses[1]", "overlaps \"10.0.0.0/24\" of the same pool")],
        ),
        case(
            "overlap across pools",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/24\"]\n\n[[pool]]\nname = \"b\"\nmode = \"l2\"\naddresses = [\"10.0.0.128/25\"]\n",
            &[(Main(9), "pool[1].addresses[0]", "overlaps \"10.0.0.0/24\" of pool \"a\" (pool[0].addresses[0], ")],
        ),
        case(
            "duplicate pool names",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\n[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.2\"]\n",
            &[(Main(6), "pool[1].name", "already used by pool[0]")],
        ),
        case(
            "interface name too long",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\ninterfaces = [\"enp0s31f6-uplink0\"]\n",
            &[(Main(5), "pool[0].interfaces[0]", "15 at most")],
        ),
        case(
            "interface name with slash",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\ninterfaces = [\"eth/0\"]\n",
            &[(Main(5), "pool[0].interfaces[0]", "'/'")],
        ),
        case(
            "interfaces on a bgp pool",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\ninterfaces = [\"eth0\"]\n",
            &[(Main(9), "pool[0].interfaces", "l2 pools only")],
        ),
        case(
            "[pool.bgp] on an l2 pool",
            "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\n[pool.bgp]\nlocal_pref = 100\n",
            &[(Main(5), "pool[0].bgp", "bgp pools only")],
        ),
        case(
            "bgp pool without any peer",
            "[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n",
            &[(Main(3), "pool[0].mode", "no [[bgp.peer]] is configured")],
        ),
        case(
            "pool names an unknown peer",
            "[[bgp.peer]]\nname = \"tor1\"\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\npeers = [\"tor2\"]\n",
            &[(Main(11), "pool[0].bgp.peers[0]", "no [[bgp.peer]] is named \"tor2\"")],
        ),
        case(
            "malformed community",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\ncommunities = [\"65000:100000\"]\n",
            &[(Main(10), "pool[0].bgp.communities[0]", "not a number 0-65535")],
        ),
        case(
            "duplicate community",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\ncommunities = [\"no-export\", \"65535:65281\"]\n",
            &[(Main(10), "pool[0].bgp.communities[1]", "listed twice")],
        ),
        case(
            "aggregation length too long",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\naggregation_length = 33\n",
            &[(Main(10), "pool[0].bgp.aggregation_length", "0-32")],
        ),
        case(
            "aggregation length shorter than the pool",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"fd00::/120\"]\n[pool.bgp]\naggregation_length_v6 = 64\n",
            &[(Main(10), "pool[0].bgp.aggregation_length_v6", "use at least 120")],
        ),
        // --- peers -------------------------------------------------------------------------
        case("ASN 0", "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 0\nmy_asn = 2\n", &[(Main(3), "bgp.peer[0].asn", "AS 0 is reserved")]),
        case("ASN too big", "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 4294967296\n", &[(Main(4), "bgp.peer[0].my_asn", "1-4294967295")]),
        case("peer without address", "[[bgp.peer]]\nasn = 1\nmy_asn = 2\n", &[(Main(1), "bgp.peer[0].address", "is required")]),
        case(
            "hold time of 2s",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\nhold_time = \"2s\"\n",
            &[(Main(5), "bgp.peer[0].hold_time", "RFC 4271")],
        ),
        case(
            "keepalive above hold time",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\nhold_time = \"30s\"\nkeepalive_time = \"40s\"\n",
            &[(Main(6), "bgp.peer[0].keepalive_time", "must not exceed hold_time (30s)")],
        ),
        case(
            "ebgp_multihop on iBGP",
            "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 64500\nmy_asn = 64500\nebgp_multihop = 3\n",
            &[(Main(5), "bgp.peer[0].ebgp_multihop", "iBGP")],
        ),
        case(
            "duplicate peer names",
            "[[bgp.peer]]\nname = \"tor\"\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[bgp.peer]]\nname = \"tor\"\naddress = \"10.0.0.2\"\nasn = 1\nmy_asn = 2\n",
            &[(Main(7), "bgp.peer[1].name", "already used by bgp.peer[0]")],
        ),
        case(
            "router id not IPv4",
            "[[bgp.peer]]\naddress = \"fd00::1\"\nasn = 1\nmy_asn = 2\nrouter_id = \"fd00::2\"\n",
            &[(Main(5), "bgp.peer[0].router_id", "IPv4")],
        ),
        // --- several at once, conf.d, environment ------------------------------------------
        case(
            "two errors at once",
            "[log]\nlevel = \"loud\"\n[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.9-10.0.0.1\"]\n",
            &[
                (Main(2), "log.level", "not a level"),
                (Main(6), "pool[0].addresses[0]", "ends before it starts"),
            ],
        ),
        Case {
            name: "error in a conf.d file",
            main: POOL,
            conf_d: &[("10-extra.toml", "[[pool]]\nname = \"extra\"\nmode = \"l2\"\naddresses = [\"10.9.0.0/24\"]\ninterfaces = [\"eth0:1\"]\n")],
            env: &[],
            expect: &[(ConfD("10-extra.toml", 5), "pool[1].interfaces[0]", "':'")],
        },
        Case {
            name: "syntax error in a conf.d file",
            main: POOL,
            conf_d: &[("20-x.toml", "\n[[bgp.peer]\naddress = \"10.0.0.1\"\n")],
            env: &[],
            expect: &[(ConfD("20-x.toml", 2), "bgp.peer[0]", "TOML syntax error")],
        },
        Case {
            name: "overlapping pools across main and conf.d",
            main: POOL,
            conf_d: &[
                ("10-a.toml", "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.8.0.0/24\"]\n"),
                ("20-b.toml", "# pool b\n[[pool]]\nname = \"b\"\nmode = \"l2\"\naddresses = [\"10.0.0.200-10.0.1.10\"]\n"),
            ],
            env: &[],
            expect: &[(ConfD("20-b.toml", 5), "pool[2].addresses[0]", "overlaps \"10.0.0.0/24\" of pool \"default\"")],
        },
        Case {
            name: "duplicate pool name across main and conf.d",
            main: POOL,
            conf_d: &[("10-a.toml", "[[pool]]\nname = \"default\"\nmode = \"l2\"\naddresses = [\"10.8.0.0/24\"]\n")],
            env: &[],
            expect: &[(ConfD("10-a.toml", 2), "pool[1].name", "already used by pool[0]")],
        },
        Case {
            name: "bad value from the environment",
            main: POOL,
            conf_d: &[],
            env: &[("FERROLB_LOG__LEVEL", "chatty")],
            expect: &[(Env("FERROLB_LOG__LEVEL"), "log.level", "not a level")],
        },
        Case {
            name: "duration without unit from the environment",
            main: POOL,
            conf_d: &[],
            env: &[("FERROLB_KUBERNETES__LEASE_DURATION", "15")],
            expect: &[(Env("FERROLB_KUBERNETES__LEASE_DURATION"), "kubernetes.lease_duration", "\"15s\"")],
        },
        Case {
            name: "unknown key from the environment",
            main: POOL,
            conf_d: &[],
            env: &[("FERROLB_LOG__LEVLE", "debug")],
            expect: &[(Env("FERROLB_LOG__LEVLE"), "log.levle", "did you mean `level`?")],
        },
        Case {
            name: "pools cannot come from the environment",
            main: POOL,
            conf_d: &[],
            env: &[("FERROLB_POOL__NAME", "x")],
            expect: &[(Env("FERROLB_POOL__NAME"), "pool.name", "conf.d")],
        },
        Case {
            name: "errors in a file and the environment together",
            main: "[log]\nformat = \"yaml\"\n",
            conf_d: &[],
            env: &[("FERROLB_METRICS__LISTEN", "nowhere")],
            expect: &[
                (Main(2), "log.format", "\"text\" or \"json\""),
                (Env("FERROLB_METRICS__LISTEN"), "metrics.listen", "host:port"),
            ],
        },
    ]
}

struct Setup {
    _dir: TempDir,
    main: PathBuf,
}

fn setup(main: &str, conf_d: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferrolb.toml");
    let text = if main.contains("[cluster]") {
        main.to_string()
    } else {
        format!("{main}{QUIET}")
    };
    fs::write(&path, text).unwrap();
    if !conf_d.is_empty() {
        fs::create_dir(dir.path().join("conf.d")).unwrap();
        // Written in reverse, so name order cannot come from creation order.
        for (name, text) in conf_d.iter().rev() {
            fs::write(dir.path().join("conf.d").join(name), text).unwrap();
        }
    }
    Setup {
        _dir: dir,
        main: path,
    }
}

fn check_config(config: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config").env_clear();
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn invalid_configurations_are_refused_with_where_and_what() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let s = setup(case.main, case.conf_d);
        let out = check_config(Some(&s.main), case.env);
        let stderr = text(&out.stderr);
        let dir = s.main.parent().unwrap();
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{}: exit {:?}, stderr:\n{stderr}",
                case.name,
                out.status.code()
            ));
            continue;
        }
        if !out.stdout.is_empty() {
            failures.push(format!(
                "{}: printed a summary for an invalid file",
                case.name
            ));
        }
        for (at, key, fragment) in case.expect {
            let prefix = match at {
                At::Main(line) => format!("{}:{line}:", s.main.display()),
                At::ConfD(name, line) => {
                    format!("{}:{line}:", dir.join("conf.d").join(name).display())
                }
                At::Env(var) => format!("environment {var}: "),
            };
            let found = stderr.lines().any(|l| {
                l.starts_with(&prefix) && l.contains(&format!(" {key}: ")) && l.contains(fragment)
            });
            if !found {
                failures.push(format!(
                    "{}: expected a line starting {prefix:?} with key {key} and {fragment:?}; stderr:\n{stderr}",
                    case.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_shipped_configuration_is_valid() {
    let out = check_config(Some(&repo_file("etc/ferrolb/ferrolb.toml")), &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stdout.contains(
            "pool default: l2, 21 IPv4 + 256 IPv6 addresses (192.168.10.10-192.168.10.30, fd00:10::/120)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("gossip: on"), "{stdout}");
    assert!(
        stderr.lines().all(|l| l.starts_with("warning: ")),
        "{stderr}"
    );
}

#[test]
fn the_shipped_bgp_example_is_valid_when_uncommented() {
    let shipped = fs::read_to_string(repo_file("etc/ferrolb/ferrolb.toml")).unwrap();
    let mut out = String::new();
    let mut in_example = false;
    for line in shipped.lines() {
        if line.starts_with("# A BGP pool") {
            in_example = true;
        } else if line.starts_with("[metrics]") {
            in_example = false;
        }
        let commented_toml =
            line.starts_with("# [") || line.starts_with("# ") && line.contains(" = ");
        if in_example && commented_toml && !line.starts_with("#   ") {
            out.push_str(&line[2..]);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(out.contains("\n[[bgp.peer]]\n"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferrolb.toml");
    fs::write(&path, out).unwrap();
    let out = check_config(Some(&path), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("pool bgp: bgp to tor1, 256 IPv4 addresses"),
        "{stdout}"
    );
    assert!(
        stdout.contains("peer tor1 (192.168.100.3): AS 64001 from AS 64500, hold 90s"),
        "{stdout}"
    );
}

#[test]
fn warnings_still_exit_0() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gossip.key");
    let password = dir.path().join("tor1.password");
    fs::write(&password, "secret").unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o644)).unwrap();
    let main = dir.path().join("ferrolb.toml");
    fs::write(
        &main,
        format!(
            "[cluster]\nsecret_file = \"{}\"\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\npassword_file = \"tor1.password\"\n",
            key.display()
        ),
    )
    .unwrap();
    let out = check_config(Some(&main), &[("FERROLB_LOG_LEVEL", "debug")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let expect = [
        format!("warning: {}:2:15: cluster.secret_file: the gossip key {} does not exist", main.display(), key.display()),
        format!("warning: {}:7:17: bgp.peer[0].password_file: the BGP password file {} can be read or written by group or others (mode 0644)", main.display(), password.display()),
        format!("warning: {}: pool: no [[pool]] is configured: there is nothing to announce", main.display()),
        "warning: environment FERROLB_LOG_LEVEL: ignored: not a configuration variable; nested keys are separated by two underscores, like FERROLB_LOG__LEVEL".to_string(),
    ];
    for e in expect {
        assert!(
            stderr.lines().any(|l| l.starts_with(&e)),
            "missing {e:?} in:\n{stderr}"
        );
    }
    assert!(text(&out.stdout).contains("peer 10.0.0.1: AS 1 from AS 2"));
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let out = check_config(Some(&path), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!("{}: ", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn conf_d_appends_pools_in_name_order_and_overrides_scalars() {
    let s = setup(
        &format!("{POOL}[log]\nlevel = \"info\"\n"),
        &[
            ("10-a.toml", "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.1.0.0/24\"]\n[log]\nlevel = \"debug\"\n"),
            ("20-b.toml", "[[pool]]\nname = \"b\"\nmode = \"l2\"\naddresses = [\"10.2.0.0/24\"]\n"),
            ("30-c.toml.disabled", "this is not read"),
        ],
    );
    let out = check_config(Some(&s.main), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pools: Vec<&str> = stdout.lines().filter(|l| l.starts_with("pool ")).collect();
    assert_eq!(pools.len(), 3, "{stdout}");
    assert!(
        pools[0].starts_with("pool default:")
            && pools[1].starts_with("pool a:")
            && pools[2].starts_with("pool b:"),
        "{stdout}"
    );
    assert!(stdout.contains("log: debug, text"), "{stdout}");
}

#[test]
fn environment_overrides_scalars() {
    let s = setup(&format!("{POOL}[log]\nlevel = \"info\"\n"), &[]);
    let out = check_config(
        Some(&s.main),
        &[
            ("FERROLB_LOG__LEVEL", "debug"),
            ("FERROLB_METRICS__LISTEN", ""),
            ("FERROLB_NODE__NAME", "worker-7"),
            ("FERROLB_KUBERNETES__SERVER", "https://10.0.0.1:6443"),
            ("FERROLB_CLUSTER__JOIN", "[10.0.0.11, 10.0.0.12:8000]"),
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.starts_with("node worker-7: 1 pool"), "{stdout}");
    assert!(stdout.contains("log: debug, text"), "{stdout}");
    assert!(stdout.contains("metrics: off"), "{stdout}");
    assert!(
        stdout.contains("kubernetes: server https://10.0.0.1:6443"),
        "{stdout}"
    );
}

#[test]
fn ferrolb_config_selects_the_file() {
    let s = setup(POOL, &[]);
    let main = s.main.display().to_string();
    let out = check_config(None, &[("FERROLB_CONFIG", &main)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pool default: l2"));
    // --config wins over FERROLB_CONFIG.
    let out = check_config(Some(&s.main), &[("FERROLB_CONFIG", "/nonexistent.toml")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = check_config(None, &[("FERROLB_CONFIG", "/nonexistent/ferrolb.toml")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/ferrolb.toml: the configuration file (named by FERROLB_CONFIG) does not exist"));
}
