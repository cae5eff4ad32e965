//! Object metadata helpers: timestamps, UIDs, generated names, name validation, ages as the
//! real server prints them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

static RNG: AtomicU64 = AtomicU64::new(0);

/// A fast, non-cryptographic random number (UIDs, generated names, allocations).
pub fn random_u64() -> u64 {
    let mut seed = RNG.load(Ordering::Relaxed);
    if seed == 0 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        seed = nanos ^ u64::from(std::process::id()) << 32;
        RNG.store(seed, Ordering::Relaxed);
    }
    // splitmix64
    let mut z = RNG
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random version-4 UUID string.
pub fn new_uid() -> String {
    let a = random_u64();
    let b = random_u64();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 + (b & 3),
        &hex[17..20],
        &hex[20..32]
    )
}

/// The 5-character suffix `generateName` appends.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Now as an RFC 3339 timestamp with seconds (`metadata.creationTimestamp`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Now as a MicroTime (`eventTime`, Lease `renewTime`).
pub fn now_rfc3339_micros() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Parses a timestamp from an object (`None` when absent or malformed).
pub fn parse_time(value: Option<&Value>) -> Option<SystemTime> {
    value
        .and_then(Value::as_str)
        .and_then(|s| humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok())
}

/// The age column: `translateTimestampSince` → `duration.HumanDuration` of the real printers.
pub fn age(value: Option<&Value>) -> String {
    match parse_time(value) {
        None => "<unknown>".to_string(),
        Some(t) => match SystemTime::now().duration_since(t) {
            Ok(d) => human_duration(d),
            Err(e) if e.duration() > Duration::from_secs(1) => "<invalid>".to_string(),
            Err(_) => "0s".to_string(),
        },
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A DNS-1123 subdomain (object names of most kinds): why not, or `None` when valid.
pub fn invalid_subdomain(name: &str) -> Option<String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if name.len() > 253 {
        Some("must be no more than 253 characters".into())
    } else if !ok_chars || !ends_ok {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
    } else {
        None
    }
}

/// A DNS-1123 label (namespace and Service names): why not, or `None` when valid.
pub fn invalid_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if name.contains('.') {
        return Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into());
    }
    invalid_subdomain(name).map(|_| "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
}

/// Reads a string at a dotted path (`spec.type`, `involvedObject.name`); numbers and booleans
/// are rendered as the real field-selector code renders them; absent → `""`.
pub fn field_string(obj: &Value, dotted: &str) -> String {
    let mut cur = obj;
    for part in dotted.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `metadata.<key>` as a string, or `""`.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_apimachinery() {
        let s = |n| human_duration(Duration::from_secs(n));
        assert_eq!(s(0), "0s");
        assert_eq!(s(119), "119s");
        assert_eq!(s(125), "2m5s");
        assert_eq!(s(600), "10m");
        assert_eq!(s(3 * 3600 + 120), "3h2m");
        assert_eq!(s(10 * 3600), "10h");
        assert_eq!(s(3 * 86400 + 3600), "3d1h");
        assert_eq!(s(30 * 86400), "30d");
        assert_eq!(s(3 * 365 * 86400), "3y");
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert_ne!(new_uid(), u);
        assert_eq!(name_suffix().len(), 5);
    }

    #[test]
    fn names_are_validated() {
        assert!(invalid_subdomain("web.example").is_none());
        assert!(invalid_subdomain("Web").is_some());
        assert!(invalid_subdomain("-a").is_some());
        assert!(invalid_label("a.b").is_some());
        assert!(invalid_label("kube-system").is_none());
    }

    #[test]
    fn ages_parse_timestamps() {
        let t = serde_json::json!(now_rfc3339());
        let a = age(Some(&t));
        assert!(a == "0s" || a == "1s", "{a}");
        assert_eq!(age(None), "<unknown>");
    }
}
