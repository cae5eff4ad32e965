//! Reading MetalLB objects key by key: every key taken is accounted for, and whatever is left
//! at the end is reported by name, so nothing is dropped silently.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::notes::Notes;
use crate::config::values::{fmt_duration, parse_duration};
use crate::config::Community;

/// The keys of one YAML mapping not yet taken, and where the mapping is (for notes).
pub(crate) struct Fields {
    at: String,
    map: Map<String, Value>,
}

impl Fields {
    /// The mapping `v` found at `at`; `None` (with a note) when it is not a mapping.
    pub fn new(at: &str, v: Value, notes: &mut Notes) -> Option<Fields> {
        match v {
            Value::Object(map) => Some(Fields {
                at: at.to_string(),
                map,
            }),
            Value::Null => Some(Fields {
                at: at.to_string(),
                map: Map::new(),
            }),
            other => {
                notes.add(
                    at,
                    format!("expected a mapping, found {}; skipped", kind(&other)),
                );
                None
            }
        }
    }

    /// The full name of key `k`, for notes.
    pub fn key(&self, k: &str) -> String {
        if self.at.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.at)
        }
    }

    /// Takes `k` (a null counts as absent).
    pub fn take(&mut self, k: &str) -> Option<Value> {
        self.map.remove(k).filter(|v| !v.is_null())
    }

    /// Takes a string (numbers are accepted as their text).
    pub fn str(&mut self, k: &str, notes: &mut Notes) -> Option<String> {
        match self.take(k)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            other => {
                notes.add(
                    self.key(k),
                    format!("expected text, found {}; not carried over", kind(&other)),
                );
                None
            }
        }
    }

    /// Takes an integer (numeric text is accepted).
    pub fn int(&mut self, k: &str, notes: &mut Notes) -> Option<i64> {
        let v = self.take(k)?;
        let n = match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if n.is_none() {
            notes.add(
                self.key(k),
                format!("expected a whole number, found {v}; not carried over"),
            );
        }
        n
    }

    /// Takes a boolean (`"true"`/`"false"` text is accepted).
    pub fn bool(&mut self, k: &str, notes: &mut Notes) -> Option<bool> {
        let v = self.take(k)?;
        let b = match &v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if b.is_none() {
            notes.add(
                self.key(k),
                format!("expected true or false, found {v}; not carried over"),
            );
        }
        b
    }

    /// Takes a list of communities as an advertisement writes them: aliases resolved from
    /// `aliases`, each checked; one that is neither an alias nor a value is noted and left out.
    pub fn communities(
        &mut self,
        k: &str,
        aliases: &BTreeMap<String, String>,
        notes: &mut Notes,
    ) -> Vec<String> {
        let at = self.key(k);
        self.strs(k, notes)
            .iter()
            .filter_map(|c| community(&at, c, aliases, notes))
            .collect()
    }

    /// Takes a list of strings (a single string counts as a list of one).
    pub fn strs(&mut self, k: &str, notes: &mut Notes) -> Vec<String> {
        let at = self.key(k);
        match self.take(k) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::String(s) => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    other => {
                        notes.add(
                            format!("{at}[{i}]"),
                            format!("expected text, found {}; not carried over", kind(&other)),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                notes.add(
                    at,
                    format!("expected a list, found {}; not carried over", kind(&other)),
                );
                Vec::new()
            }
        }
    }

    /// Takes a list of mappings.
    pub fn list(&mut self, k: &str, notes: &mut Notes) -> Vec<Fields> {
        let at = self.key(k);
        match self.take(k) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| Fields::new(&format!("{at}[{i}]"), v, notes))
                .collect(),
            Some(other) => {
                notes.add(
                    at,
                    format!("expected a list, found {}; not carried over", kind(&other)),
                );
                Vec::new()
            }
        }
    }

    /// Takes a mapping of strings.
    pub fn string_map(&mut self, k: &str, notes: &mut Notes) -> BTreeMap<String, String> {
        let at = self.key(k);
        let mut out = BTreeMap::new();
        match self.take(k) {
            None => {}
            Some(Value::Object(m)) => {
                for (key, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(key, s);
                        }
                        Value::Number(_) | Value::Bool(_) => {
                            out.insert(key, v.to_string());
                        }
                        other => notes.add(
                            format!("{at}.{key}"),
                            format!("expected text, found {}; not carried over", kind(&other)),
                        ),
                    }
                }
            }
            Some(other) => notes.add(
                at,
                format!(
                    "expected a mapping, found {}; not carried over",
                    kind(&other)
                ),
            ),
        }
        out
    }

    /// Takes `k` and, when it was set, notes it as not carried over for `why`.
    pub fn unsupported(&mut self, k: &str, why: &str, notes: &mut Notes) {
        if self.take(k).is_some() {
            notes.add(self.key(k), why);
        }
    }

    /// Notes every key not taken.
    pub fn rest(self, notes: &mut Notes) {
        for k in self.map.keys() {
            notes.add(self.key(k), "unknown key; not carried over");
        }
    }
}

/// A value's YAML type, for notes.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A list of Kubernetes label selectors (MetalLB ORs them) as one ferrolb `node_selector`
/// (labels that must all match). `matchLabels` carry over; an `In` expression with one value
/// is the same as a label; anything else is noted. `labels_key` / `exprs_key` are how the
/// generation spells them.
pub(crate) fn node_selector(
    selectors: Vec<Fields>,
    labels_key: &str,
    exprs_key: &str,
    notes: &mut Notes,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, mut s) in selectors.into_iter().enumerate() {
        if i > 0 {
            notes.add(
                s.at.clone(),
                "MetalLB matches a node by any one of several selectors; ferrolb's node_selector is one set of labels: only the first selector was carried over",
            );
            continue;
        }
        out = s.string_map(labels_key, notes);
        for e in s.list(exprs_key, notes) {
            expression(e, &mut out, notes);
        }
        s.rest(notes);
    }
    out
}

fn expression(mut e: Fields, out: &mut BTreeMap<String, String>, notes: &mut Notes) {
    let at = e.at.clone();
    let key = e.str("key", notes);
    let op = e.str("operator", notes);
    let values = e.strs("values", notes);
    e.rest(notes);
    match (key, op.as_deref(), values.as_slice()) {
        (Some(k), Some("In"), [v]) => {
            out.insert(k, v.clone());
        }
        (k, op, vs) => notes.add(
            at,
            format!(
                "match expression {} {} {:?} not carried over: ferrolb's node_selector only matches labels equal to one value (label = \"value\")",
                k.unwrap_or_default(),
                op.unwrap_or("?"),
                vs
            ),
        ),
    }
}

/// A MetalLB duration (`"90s"`, `"1m30s"`) as ferrolb writes it; `None` with a note when it
/// is not one.
pub(crate) fn duration(at: &str, text: &str, notes: &mut Notes) -> Option<String> {
    match parse_duration(text) {
        Ok(d) => Some(fmt_duration(d)),
        Err(e) => {
            notes.add(at, format!("{e}; not carried over"));
            None
        }
    }
}

/// A community as written in an advertisement: an alias (resolved from `aliases`) or a value.
/// `None` with a note when it is neither.
fn community(
    at: &str,
    text: &str,
    aliases: &BTreeMap<String, String>,
    notes: &mut Notes,
) -> Option<String> {
    let value = aliases.get(text).map_or(text, String::as_str).trim();
    match value.parse::<Community>() {
        Ok(_) => Some(value.to_string()),
        Err(e) => {
            notes.add(at, format!("{e}; not carried over"));
            None
        }
    }
}

/// Addresses as ferrolb writes them: MetalLB tolerates spaces around a range's dash.
pub(crate) fn addresses(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|a| a.split('-').map(str::trim).collect::<Vec<_>>().join("-"))
        .collect()
}
