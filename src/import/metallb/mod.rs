//! `ferrolb import-metallb`: MetalLB configuration to ferrolb.toml, both generations — the
//! ConfigMap of v0.9-v0.12 ([`legacy`]) and the `metallb.io` CRDs ([`crds`]), in multi-document
//! YAML. Pure: text in, TOML and [`Note`]s out; the command line prints them.

mod crds;
mod emit;
mod fields;
mod legacy;
mod model;
mod notes;
#[cfg(test)]
mod tests;

use serde_json::Value;

use fields::Fields;
use model::Converted;
pub use notes::Note;
use notes::Notes;

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The ferrolb.toml text.
    pub toml: String,
    /// Every setting not carried over, and every manual step, in input order.
    pub notes: Vec<Note>,
}

/// Why nothing could be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file is not YAML.
    #[error("{file} is not YAML: {why}")]
    NotYaml {
        /// The file as named.
        file: String,
        /// The parser's message.
        why: String,
    },
    /// The file holds no MetalLB configuration.
    #[error("{file} holds no MetalLB configuration (neither a ConfigMap with a `config` key nor metallb.io objects such as IPAddressPool)")]
    NoMetallb {
        /// The file as named.
        file: String,
    },
}

/// Converts the files `(name, text)` together (CRDs often come in several files).
pub fn convert(files: &[(String, String)]) -> Result<Conversion, ImportError> {
    let mut notes = Notes::default();
    let mut out = Converted::default();
    let mut objects = Vec::new();
    for (file, text) in files {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| ImportError::NotYaml {
                file: file.clone(),
                why: e.to_string().lines().next().unwrap_or_default().to_string(),
            })?;
        let mut found = false;
        for (i, doc) in docs.into_iter().enumerate() {
            let origin = format!("{file} document {}", i + 1);
            found |= document(doc, &origin, &mut out, &mut objects, &mut notes);
        }
        if !found {
            return Err(ImportError::NoMetallb { file: file.clone() });
        }
    }
    crds::convert(objects, &mut out, &mut notes);
    consistent(&mut out, &mut notes);
    let sources: Vec<String> = files.iter().map(|(f, _)| f.clone()).collect();
    Ok(Conversion {
        toml: emit::emit(&out, &sources),
        notes: notes.0,
    })
}

/// Makes the result pass check-config where the input cannot be carried over as is: names
/// used twice (several files, or both generations) keep their first object, and a pool
/// advertised to a peer not in the input does without it.
fn consistent(out: &mut Converted, notes: &mut Notes) {
    let mut seen = std::collections::BTreeSet::new();
    out.pools.retain(|p| {
        let first = seen.insert(p.name.clone());
        if !first {
            notes.add(format!("pool {}", p.name), "a second pool of this name; ferrolb pool names are unique: only the first was kept");
        }
        first
    });
    let mut seen = std::collections::BTreeSet::new();
    out.peers.retain(|p| {
        let first = seen.insert(p.name.clone());
        if !first {
            notes.add(format!("peer {}", p.name), "a second peer of this name; ferrolb peer names are unique: only the first was kept");
        }
        first
    });
    let no_peers = out.peers.is_empty();
    for pool in &mut out.pools {
        let name = pool.name.clone();
        if no_peers && pool.mode == Some(model::Mode::Bgp) {
            // check-config refuses a bgp pool without peers; the peers may be in another file.
            notes.add(format!("pool {name}"), "a bgp pool, but the input has no BGP peers: written as mode = \"l2\" (its BGP settings are lost) so the file is valid; convert the peers' files along with it to keep it bgp");
            pool.mode = Some(model::Mode::L2);
            pool.bgp = model::Bgp::default();
            continue;
        }
        pool.bgp.peers.retain(|peer| {
            let known = seen.contains(peer);
            if !known {
                notes.add(format!("pool {name} peers"), format!("no BGPPeer {peer:?} in the input; left out (name it in [pool.bgp] peers once it is configured)"));
            }
            known
        });
    }
}

/// Sorts one YAML document: a legacy config (in a ConfigMap or bare), a MetalLB object
/// (gathered into `objects`), a List (its items), or something else (noted). Returns whether
/// it held MetalLB configuration.
fn document(
    doc: Value,
    origin: &str,
    out: &mut Converted,
    objects: &mut Vec<crds::Object>,
    notes: &mut Notes,
) -> bool {
    let Value::Object(mut map) = doc else {
        if !doc.is_null() {
            notes.add(origin, "not a Kubernetes object; skipped");
        }
        return false;
    };
    // The bare contents of the legacy `config` key.
    if map.contains_key("address-pools") || map.contains_key("peers") {
        legacy::convert(Value::Object(map), origin, out, notes);
        return true;
    }
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let meta = map.remove("metadata").unwrap_or(Value::Null);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let described = if name.is_empty() {
        kind.clone()
    } else {
        format!("{kind} {name}")
    };
    match kind.as_str() {
        "List" => {
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let mut found = false;
            for (i, item) in items.into_iter().enumerate() {
                found |= document(
                    item,
                    &format!("{origin} item {}", i + 1),
                    out,
                    objects,
                    notes,
                );
            }
            found
        }
        "ConfigMap" => match map
            .get("data")
            .and_then(|d| d.get("config"))
            .and_then(Value::as_str)
        {
            Some(text) => match serde_saphyr::from_str::<Value>(text) {
                Ok(config) => {
                    legacy::convert(config, &format!("{origin} (ConfigMap {name})"), out, notes);
                    true
                }
                Err(e) => {
                    notes.add(
                        format!("ConfigMap {name} data.config"),
                        format!(
                            "is not YAML ({}); skipped",
                            e.to_string().lines().next().unwrap_or_default()
                        ),
                    );
                    false
                }
            },
            None => {
                notes.add(
                    &described,
                    "a ConfigMap without a `config` key is not MetalLB configuration; skipped",
                );
                false
            }
        },
        k if crds::KINDS.contains(&k) => {
            let api = map
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !api.starts_with("metallb.io/") {
                notes.add(
                    &described,
                    format!("apiVersion {api:?} is not metallb.io; skipped"),
                );
                return false;
            }
            let labels = Fields::new(&format!("{described} metadata"), meta, notes)
                .map(|mut m| m.string_map("labels", notes))
                .unwrap_or_default();
            let spec = map.remove("spec").unwrap_or(Value::Null);
            let Some(spec) = Fields::new(&format!("{described} spec"), spec, notes) else {
                return false;
            };
            objects.push(crds::Object {
                kind: kind.clone(),
                name,
                labels,
                spec,
                origin: origin.to_string(),
            });
            true
        }
        "BFDProfile" => {
            notes.add(&described, "ferrolb has no BFD yet: its BGP sessions detect a dead peer by the hold time; skipped");
            true
        }
        _ if map
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with("metallb.io/")) =>
        {
            notes.add(
                &described,
                "this metallb.io kind has no ferrolb equivalent; skipped",
            );
            false
        }
        _ => {
            notes.add(
                if described.is_empty() {
                    origin
                } else {
                    &described
                },
                "not MetalLB configuration; skipped",
            );
            false
        }
    }
}
