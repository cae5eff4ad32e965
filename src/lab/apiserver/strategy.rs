//! What happens to an object on create and update, as the real server's registry strategies
//! do it: system metadata (uid, creationTimestamp, generation), kind defaults (Services,
//! Namespaces, Secrets, Deployments), status subresource separation, name and metadata
//! validation, and unknown fields (`fieldValidation`).

use serde_json::{json, Value};

use super::handler::Query;
use super::meta::{self, meta_str};
use super::patch;
use super::resources::ResourceDef;
use super::server::Shared;
use super::services::{self, Used};
use super::status::{ApiError, ApiResult};
use super::store::Txn;

const META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// How unknown fields are handled (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn field_validation(q: &Query) -> ApiResult<FieldValidation> {
    match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation: invalid value {other:?}: must be one of Ignore, Warn or Strict"
        ))),
    }
}

/// Drops the top-level and metadata fields the kind does not have (the real server cannot
/// store them either); returns their paths. Deeper unknown fields are not detected.
fn prune_unknown(def: &ResourceDef, view: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let allowed = def.top_level_fields();
    if let Some(m) = view.as_object_mut() {
        m.retain(|k, _| {
            let known = matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                || allowed.contains(&k.as_str());
            if !known {
                unknown.push(k.clone());
            }
            known
        });
    }
    if let Some(m) = view.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|k, _| {
            let known = META_FIELDS.contains(&k.as_str());
            if !known {
                unknown.push(format!("metadata.{k}"));
            }
            known
        });
    }
    unknown
}

/// Applies `fieldValidation`: unknown fields refused (Strict), or dropped with warnings.
pub(crate) fn check_fields(
    def: &ResourceDef,
    view: &mut Value,
    q: &Query,
) -> ApiResult<Vec<String>> {
    let mode = field_validation(q)?;
    let unknown = prune_unknown(def, view);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    match mode {
        FieldValidation::Strict => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                def.kind,
                def.api_version(),
                def.kind,
                list.join(", ")
            )))
        }
        FieldValidation::Warn => Ok(unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect()),
        FieldValidation::Ignore => Ok(Vec::new()),
    }
}

/// The metadata fields the simulator reads must have their types (the real server's decoder
/// refuses anything else with 400).
pub(crate) fn validate_meta(obj: &Value) -> ApiResult<()> {
    let Some(meta) = obj.get("metadata") else {
        return Ok(());
    };
    let Some(meta) = meta.as_object() else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    for key in [
        "name",
        "generateName",
        "namespace",
        "resourceVersion",
        "uid",
    ] {
        if meta
            .get(key)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "metadata.{key} must be a string"
            )));
        }
    }
    for key in ["labels", "annotations"] {
        match meta.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "metadata.{key} must be a map of strings to strings"
                )))
            }
        }
    }
    Ok(())
}

pub(crate) fn validate_name(def: &ResourceDef, name: &str) -> ApiResult<()> {
    let why = match def.storage {
        "services" | "namespaces" => meta::invalid_label(name),
        _ => meta::invalid_subdomain(name),
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ApiError::invalid(
            def.group,
            def.kind,
            name,
            vec![super::status::Cause {
                reason: "FieldValueInvalid",
                field: "metadata.name".into(),
                message: format!("Invalid value: \"{name}\": {why}"),
            }],
        )),
    }
}

/// Kind-specific defaulting shared by create and update.
fn default_kind(def: &ResourceDef, obj: &mut Value, name: &str) -> ApiResult<()> {
    match def.storage {
        "namespaces" => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if !obj["spec"].is_object() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        "secrets" => {
            if obj
                .get("type")
                .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
            {
                obj["type"] = json!("Opaque");
            }
            if let Some(Value::Object(string_data)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                use base64::Engine;
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in string_data {
                    let s = v.as_str().unwrap_or("");
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                }
            }
            if let Some(data) = obj["data"].as_object() {
                use base64::Engine;
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    });
                    if !ok {
                        return Err(ApiError::bad_request(format!(
                            "illegal base64 data in Secret data key {k:?}"
                        )));
                    }
                }
            }
        }
        "deployments" if obj["spec"].is_object() && obj["spec"].get("replicas").is_none() => {
            obj["spec"]["replicas"] = json!(1);
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn prepare_create(
    def: &ResourceDef,
    obj: &mut Value,
    name: &str,
    ns: &str,
    txn: &Txn<'_>,
    shared: &Shared,
) -> ApiResult<()> {
    {
        let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        m.insert("name".into(), json!(name));
        if def.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            m.remove(k);
        }
        if def.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    match def.storage {
        "services" => {
            let mut used = Used::new(txn.service_index());
            services::prepare(obj, None, &mut used, &shared.config.service_ranges)?;
        }
        "namespaces" => obj["status"] = json!({"phase": "Active"}),
        "deployments" => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
    default_kind(def, obj, name)?;
    patch::prune_directives(obj);
    Ok(())
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

pub(crate) fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    new: Value,
    status_only: bool,
    txn: &Txn<'_>,
    shared: &Shared,
) -> ApiResult<Value> {
    let name = meta_str(old, "name").to_string();
    let mut obj = if status_only {
        // `/status`: only the status changes.
        let mut o = old.clone();
        match new.get("status") {
            Some(s) => o["status"] = s.clone(),
            None => {
                if let Some(m) = o.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        o
    } else {
        let mut o = new;
        if def.status_subresource {
            match old.get("status") {
                Some(s) => o["status"] = s.clone(),
                None => {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        o
    };
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        match old["metadata"].get(k) {
            Some(v) => obj["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("selfLink");
    }
    if def.storage == "services" {
        // `ipMode: VIP` is defaulted for ingress points with an IP (Kubernetes ≥ 1.30).
        let ingress = obj
            .get_mut("status")
            .and_then(|s| s.get_mut("loadBalancer"))
            .and_then(|l| l.get_mut("ingress"))
            .and_then(Value::as_array_mut);
        if let Some(ingress) = ingress {
            for point in ingress.iter_mut() {
                if point
                    .get("ip")
                    .is_some_and(|ip| ip.as_str().is_some_and(|s| !s.is_empty()))
                    && point.get("ipMode").is_none()
                {
                    point["ipMode"] = json!("VIP");
                }
            }
        }
    }
    if !status_only {
        if def.storage == "services" {
            let mut used = Used::new(txn.service_index());
            services::prepare(
                &mut obj,
                Some(old),
                &mut used,
                &shared.config.service_ranges,
            )?;
        }
        default_kind(def, &mut obj, &name)?;
    }
    patch::prune_directives(&mut obj);
    if def.generation {
        let skip = ["metadata", "status", "apiVersion", "kind"];
        if without(old, &skip) != without(&obj, &skip) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            obj["metadata"]["generation"] = json!(g);
        }
    }
    Ok(obj)
}
