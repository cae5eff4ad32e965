//! Parsers for single values as operators write them: durations, socket addresses, join
//! targets, interface names, Kubernetes names and labels, URLs, log levels. Pure; each error
//! message says what was wrong and what would be accepted.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Parses a duration with a unit (`"90s"`, `"500ms"`, `"1m"`, `"1h 30m"`).
///
/// A bare number is refused: `hold_time = 90` could mean seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write a number with a unit, like \"90s\" or \"500ms\"".into());
    }
    if t.parse::<f64>().is_ok() {
        return Err(format!(
            "{text:?} has no unit; add one, like \"{t}s\" or \"{t}ms\""
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("{text:?} is not a duration ({e}); write a number with a unit, like \"90s\", \"500ms\", \"1m\" or \"1h 30m\"")
    })
}

/// Formats a duration the way operators write it: `90s`, `500ms`, `1m 30s` only when needed.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Parses a `"host:port"` listening address whose host is an IP address (`"0.0.0.0:7946"`,
/// `"[::]:7472"`). Port 0 is refused: the port has to be known to the other side. `port` is
/// the usual port, for the examples in messages.
pub fn parse_listen_addr(text: &str, port: u16) -> Result<SocketAddr, String> {
    let t = text.trim();
    let addr: SocketAddr = t.parse().map_err(|_| {
        if t.parse::<IpAddr>().is_ok() {
            format!("{text:?} has no port; write \"host:port\", like \"{}:{port}\"", bracket(t))
        } else {
            format!("{text:?} is not an address and port; write \"host:port\" with an IP address, like \"0.0.0.0:{port}\" or \"[::]:{port}\"")
        }
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{text:?} has port 0; choose a fixed port (1-65535) so others can reach it"
        ));
    }
    Ok(addr)
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// A gossip peer to contact at start: a host name or IP address, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinAddress {
    /// An IP address or a DNS name, as written (without brackets).
    pub host: String,
    /// The port; `cluster.bind`'s port when the entry names none.
    pub port: u16,
}

impl fmt::Display for JoinAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses a `cluster.join` entry: `"10.0.0.11"`, `"10.0.0.11:7946"`, `"node-1.example"`,
/// `"fd00::11"`, `"[fd00::11]:7946"`. Without a port, `default_port` is used.
pub fn parse_join(text: &str, default_port: u16) -> Result<JoinAddress, String> {
    let t = text.trim();
    let accepted = "write a host name or IP address, optionally with a port: \"10.0.0.11\", \"10.0.0.11:7946\", \"[fd00::11]:7946\"";
    if t.is_empty() {
        return Err(format!("empty entry; {accepted}"));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(JoinAddress {
            host: ip.to_string(),
            port: default_port,
        });
    }
    if let Ok(sa) = t.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(format!("{text:?} has port 0; {accepted}"));
        }
        return Ok(JoinAddress {
            host: sa.ip().to_string(),
            port: sa.port(),
        });
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => {
            let port =
                p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    format!("{text:?} has a bad port {p:?} (1-65535); {accepted}")
                })?;
            (h, port)
        }
        None => (t, default_port),
    };
    if !is_dns_name(host) {
        return Err(format!(
            "{host:?} in {text:?} is neither an IP address nor a host name; {accepted}"
        ));
    }
    Ok(JoinAddress {
        host: host.to_string(),
        port,
    })
}

/// Whether `s` is a DNS host name: dot-separated labels of letters, digits and `-`, each 1-63
/// bytes and not starting or ending with `-`, 253 bytes at most.
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a Linux network interface name as the kernel does (`dev_valid_name`): 1-15 bytes,
/// not `.` or `..`, no `/`, `:` or whitespace.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > 15 {
        Some(format!(
            "is {} bytes long; Linux allows 15 at most",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("is not allowed by Linux".to_string())
    } else if name.contains('/') {
        Some("contains '/'".to_string())
    } else if name.contains(':') {
        Some("contains ':' (alias labels like \"eth0:1\" are not interfaces)".to_string())
    } else if name.chars().any(char::is_whitespace) {
        Some("contains whitespace".to_string())
    } else if name.chars().any(char::is_control) {
        Some("contains a control character".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(format!(
            "interface name {name:?} {why}; write a Linux interface name like \"eth1\" or \"bond0.100\""
        )),
        None => Ok(()),
    }
}

/// Whether `s` is a DNS-1123 label (a Kubernetes namespace name): 1-63 bytes of lower-case
/// letters, digits and `-`, starting and ending with a letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (a Kubernetes Node name): dot-separated DNS-1123
/// labels, 253 bytes at most.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Whether `s` is a label value, or the name part of a qualified name: 63 bytes at most, letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit (or empty when
/// `allow_empty`).
fn is_label_name(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alnum(s.chars().next())
        && alnum(s.chars().last())
}

/// Checks a Kubernetes qualified name (a label key, a LoadBalancerClass): `name` or
/// `prefix/name`, the prefix a DNS subdomain.
pub fn check_qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Err(format!(
                "{s:?}: the prefix {p:?} must be a lower-case DNS subdomain like \"example.com\""
            ));
        }
    }
    if !is_label_name(name, false) {
        return Err(format!(
            "{s:?} is not a qualified name: expected \"name\" or \"prefix/name\", the name 1-63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit (e.g. \"kubernetes.io/hostname\")"
        ));
    }
    Ok(())
}

/// Checks a Kubernetes label value: empty, or 1-63 letters, digits, `-`, `_`, `.`, beginning and
/// ending with a letter or digit.
pub fn check_label_value(s: &str) -> Result<(), String> {
    if is_label_name(s, true) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a label value: at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"
        ))
    }
}

/// Checks a pool name: 1-63 letters, digits, `-`, `_`, `.`, beginning and ending with a letter
/// or digit (it goes into the `ferrolb.io/address-pool` annotation).
pub fn check_pool_name(s: &str) -> Result<(), String> {
    if is_label_name(s, false) {
        Ok(())
    } else if s.is_empty() {
        Err("a pool name must not be empty".to_string())
    } else {
        Err(format!(
            "pool name {s:?} is not allowed: use 1-63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"
        ))
    }
}

/// Checks an `http://` or `https://` URL with a host (and optional port and path).
pub fn check_http_url(s: &str) -> Result<(), String> {
    let accepted = "write an http(s) URL like \"https://10.0.0.1:6443\"";
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} is not an http(s) URL; {accepted}"))?;
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?} contains whitespace; {accepted}"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err(format!("{s:?} has an unclosed '[' in its host; {accepted}")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = if authority.starts_with('[') {
        host.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host)
    };
    if !host_ok {
        return Err(format!("{s:?} has no valid host; {accepted}"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().ok().filter(|p| *p != 0).is_none() {
            return Err(format!("{s:?} has a bad port {p:?} (1-65535); {accepted}"));
        }
    }
    Ok(())
}

/// The level names `log.level` accepts.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks `log.level`: a level name, or comma-separated directives each of which is a level
/// name or `target=level` (`"info,ferrolb::bgp=debug"`).
pub fn check_log_level(s: &str) -> Result<(), String> {
    let accepted = "expected one of trace, debug, info, warn, error, off, or directives like \"info,ferrolb::bgp=debug\"";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty log level; {accepted}"));
    }
    for directive in t.split(',') {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => {
                return Err(format!(
                    "{directive:?} has no target before '='; {accepted}"
                ))
            }
            None => directive,
        };
        if !LOG_LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            let level = level.trim();
            return Err(if level == t {
                format!("{level:?} is not a level; {accepted}")
            } else {
                format!("{s:?}: {level:?} is not a level; {accepted}")
            });
        }
    }
    tracing_subscriber::EnvFilter::try_new(t)
        .map(|_| ())
        .map_err(|e| format!("{s:?} is not a valid filter ({e}); {accepted}"))
}

/// Edit distance between two short strings, counting a swap of neighbours as one edit
/// (optimal string alignment), for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word_l = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word_l, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        let e = parse_duration("90").unwrap_err();
        assert!(e.contains("no unit") && e.contains("\"90s\""), "{e}");
        assert!(parse_duration("1.5").unwrap_err().contains("no unit"));
        assert!(parse_duration("").unwrap_err().contains("empty"));
        let e = parse_duration("90x").unwrap_err();
        assert!(e.contains("not a duration") && e.contains("500ms"), "{e}");
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn durations_format_as_written() {
        assert_eq!(fmt_duration(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("0.0.0.0:7946", 7946).unwrap().to_string(),
            "0.0.0.0:7946"
        );
        assert_eq!(parse_listen_addr("[::]:7472", 7946).unwrap().port(), 7472);
        assert!(parse_listen_addr("0.0.0.0", 7946)
            .unwrap_err()
            .contains("no port"));
        assert!(parse_listen_addr("fd00::1", 7946)
            .unwrap_err()
            .contains("[fd00::1]:7946"));
        assert!(parse_listen_addr("localhost:80", 7946)
            .unwrap_err()
            .contains("host:port"));
        assert!(parse_listen_addr("0.0.0.0:0", 7946)
            .unwrap_err()
            .contains("port 0"));
        assert!(parse_listen_addr("0.0.0.0:99999", 7946).is_err());
    }

    #[test]
    fn join_targets() {
        let j = |s| parse_join(s, 7946);
        assert_eq!(j("10.0.0.11").unwrap().to_string(), "10.0.0.11:7946");
        assert_eq!(j("10.0.0.11:8000").unwrap().port, 8000);
        assert_eq!(j("fd00::11").unwrap().to_string(), "[fd00::11]:7946");
        assert_eq!(j("[fd00::11]:8000").unwrap().port, 8000);
        assert_eq!(j("node-1.example").unwrap().host, "node-1.example");
        assert_eq!(j("node-1:8000").unwrap().port, 8000);
        assert!(j("").is_err());
        assert!(j("node_1").is_err());
        assert!(j("node:0").is_err());
        assert!(j("node:x").is_err());
        assert!(j("a b").is_err());
    }

    #[test]
    fn interface_names() {
        for ok in [
            "eth0",
            "bond0.100",
            "enp0s31f6",
            "br-lan",
            "a23456789012345",
        ] {
            assert!(check_interface_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("a234567890123456", "16 bytes"),
            (".", "not allowed"),
            ("..", "not allowed"),
            ("eth/0", "'/'"),
            ("eth0:1", "':'"),
            ("eth 0", "whitespace"),
            ("eth\t0", "whitespace"),
        ] {
            let e = check_interface_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn kubernetes_names() {
        assert!(is_dns1123_label("kube-system"));
        assert!(!is_dns1123_label("Kube"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("worker-1.example.com"));
        assert!(!is_dns1123_subdomain("worker_1"));
        assert!(check_qualified_name("kubernetes.io/hostname").is_ok());
        assert!(check_qualified_name("zone").is_ok());
        assert!(check_qualified_name("ferrolb.io/lb").is_ok());
        assert!(check_qualified_name("Bad Prefix/x").is_err());
        assert!(check_qualified_name("example.com/").is_err());
        assert!(check_qualified_name("-x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("rack-1").is_ok());
        assert!(check_label_value("rack 1").is_err());
        assert!(check_pool_name("default").is_ok());
        assert!(check_pool_name("").is_err());
        assert!(check_pool_name("my pool").is_err());
    }

    #[test]
    fn urls() {
        for ok in [
            "https://10.0.0.1:6443",
            "http://api.example:8080/prefix",
            "https://[fd00::1]:6443",
            "https://kubernetes",
        ] {
            assert!(check_http_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.1:6443",
            "ftp://x",
            "https://",
            "https://:6443",
            "https://a b",
            "https://x:0",
            "https://x:port",
            "https://[fd00::1",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_levels() {
        for ok in ["info", "DEBUG", "warn", "info,ferrolb::bgp=debug", "off"] {
            assert!(check_log_level(ok).is_ok(), "{ok}");
        }
        for bad in ["", "verbose", "infoo", "ferrolb=loud", "=debug"] {
            let e = check_log_level(bad).unwrap_err();
            assert!(e.contains("trace, debug, info"), "{bad}: {e}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("levle", "level"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("levle", &["level", "format"]), Some("level"));
        assert_eq!(
            closest("adresses", &["addresses", "name"]),
            Some("addresses")
        );
        assert_eq!(closest("zzz", &["level", "format"]), None);
    }

    proptest! {
        #[test]
        fn duration_text_round_trips(ms in 0u64..10_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&fmt_duration(d)), Ok(d));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,30}") {
            let _ = parse_duration(&s);
            let _ = parse_listen_addr(&s, 7946);
            let _ = parse_join(&s, 7946);
            let _ = check_interface_name(&s);
            let _ = check_http_url(&s);
            let _ = check_log_level(&s);
            let _ = check_qualified_name(&s);
        }
    }
}
