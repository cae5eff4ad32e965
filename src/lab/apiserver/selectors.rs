//! Label selectors (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) and field selectors
//! (`metadata.name=x,spec.type!=ClusterIP`), for list, watch and deletecollection.

use serde_json::Value;

use super::meta::field_string;
use super::resources::ResourceDef;
use super::status::{ApiError, ApiResult};

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key` — the label exists.
    Exists(String),
    /// `!key` — the label does not exist.
    NotExists(String),
    /// `key=v`, `key==v`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=v`, `key notin (a,b)` (also true when the label is missing).
    NotIn(String, Vec<String>),
    /// `key>n` / `key<n` (integers).
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A parsed label selector: all requirements must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

/// A parsed field selector: `(label, value, equal)` triples, all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, String, bool)>);

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    });
    name_ok && prefix_ok
}

fn valid_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && v.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric()))
}

fn bad(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} (selector {sel:?})"
    ))
}

// === impl LabelSelector ===

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top_level(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(bad(s, "found ',', expected: identifier"));
            }
            let req =
                Self::parse_one(p).ok_or_else(|| bad(s, &format!("invalid requirement {p:?}")))?;
            let key = match &req {
                Requirement::Exists(k)
                | Requirement::NotExists(k)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Gt(k, _)
                | Requirement::Lt(k, _) => k,
            };
            if !valid_key(key) {
                return Err(bad(s, &format!("invalid label key {key:?}")));
            }
            if let Requirement::In(_, vals) | Requirement::NotIn(_, vals) = &req {
                if let Some(v) = vals.iter().find(|v| !valid_value(v)) {
                    return Err(bad(s, &format!("invalid label value: {v:?}")));
                }
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    fn parse_one(p: &str) -> Option<Requirement> {
        if let Some(key) = p.strip_prefix('!') {
            return Some(Requirement::NotExists(key.trim().to_string()));
        }
        if let Some(open) = p.find('(') {
            let close = p.rfind(')')?;
            if close < open || !p[close + 1..].trim().is_empty() {
                return None;
            }
            let head = p[..open].trim();
            let (key, op) = head.rsplit_once(char::is_whitespace)?;
            let values: Vec<String> = p[open + 1..close]
                .split(',')
                .map(|v| v.trim().to_string())
                .collect();
            return match op {
                "in" => Some(Requirement::In(key.trim().to_string(), values)),
                "notin" => Some(Requirement::NotIn(key.trim().to_string(), values)),
                _ => None,
            };
        }
        for (op, ne) in [("!=", true), ("==", false), ("=", false)] {
            if let Some((k, v)) = p.split_once(op) {
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                return Some(if ne {
                    Requirement::NotIn(k, vec![v])
                } else {
                    Requirement::In(k, vec![v])
                });
            }
        }
        for (op, gt) in [(">", true), ("<", false)] {
            if let Some((k, v)) = p.split_once(op) {
                let n: i64 = v.trim().parse().ok()?;
                let k = k.trim().to_string();
                return Some(if gt {
                    Requirement::Gt(k, n)
                } else {
                    Requirement::Lt(k, n)
                });
            }
        }
        if p.contains(char::is_whitespace) {
            return None;
        }
        Some(Requirement::Exists(p.to_string()))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn unescape_field(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

// === impl FieldSelector ===

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter for a resource: labels it does not support
    /// are a 400 `BadRequest` (`field label not supported: x`), as on the real server.
    pub fn parse(s: &str, def: &ResourceDef) -> ApiResult<Self> {
        let mut out = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(out));
        }
        for part in split_unescaped(s, ',') {
            let p = part.trim();
            let (label, value, equal) = if let Some((l, v)) = p.split_once("!=") {
                (l, v, false)
            } else if let Some((l, v)) = p.split_once("==") {
                (l, v, true)
            } else if let Some((l, v)) = p.split_once('=') {
                (l, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            let stored = def.field_label(label.trim());
            if !def.supports_field(&stored) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    label.trim()
                )));
            }
            out.push((stored, unescape_field(value), equal));
        }
        Ok(FieldSelector(out))
    }

    /// Whether a stored object satisfies the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(label, value, equal)| (field_string(obj, label) == *value) == *equal)
    }

    /// The value required for `metadata.name`, when the selector pins one.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(l, _, eq)| *eq && l == "metadata.name")
            .map(|(_, v, _)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::apiserver::resources::find;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}, "spec": {"type": "LoadBalancer"}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"));
        assert!(m("app in (web, api)"));
        assert!(!m("app notin (web,api)"));
        assert!(m("missing notin (web)"));
        assert!(m("app,tier=front"));
        assert!(!m("app,tier=back"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("n>4"));
        assert!(!m("n<4"));
        assert!(m("app in (web),tier notin (back),!x"));
    }

    #[test]
    fn label_selector_rejects_garbage() {
        assert!(LabelSelector::parse("app in (web").is_err());
        assert!(LabelSelector::parse("app=web,").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("app=we b").is_err());
        assert_eq!(
            LabelSelector::parse("app=").unwrap().0,
            vec![Requirement::In("app".into(), vec!["".into()])]
        );
    }

    #[test]
    fn field_selectors() {
        let svc = find("", "v1", "services").unwrap();
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s, svc).unwrap().matches(&o);
        assert!(m("metadata.name=n"));
        assert!(m("metadata.name=n,metadata.namespace=ns"));
        assert!(!m("metadata.name!=n"));
        assert!(m("spec.type=LoadBalancer"));
        let err = FieldSelector::parse("spec.foo=x", svc).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        let sel = FieldSelector::parse("regarding.name=web", ev).unwrap();
        assert!(sel.matches(&json!({"involvedObject": {"name": "web"}})));
    }
}
