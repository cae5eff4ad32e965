//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
//! patch — a merge patch that merges the lists Kubernetes declares as keyed (Service ports by
//! `port`, containers by `name`, conditions by `type`, …) and honours the directives
//! `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`. Directives are never stored: whatever a patch leaves,
//! keys starting with `$` are pruned, as the real server's decoding drops unknown fields.

use serde_json::{Map, Value};

use super::status::{ApiError, ApiResult};

/// The patch types of the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply): not supported.
    Apply,
}

// === impl PatchType ===

impl PatchType {
    /// From a `Content-Type` value (parameters ignored).
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// Applies a patch of `kind` objects to `target` and returns the result.
pub fn apply(target: &Value, patch_type: PatchType, body: &[u8], kind: &str) -> ApiResult<Value> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut doc = target.clone();
            json_patch::merge(&mut doc, &patch);
            doc
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            let mut doc = target.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::internal(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            doc
        }
        PatchType::Strategic => {
            let Value::Object(p) = &patch else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            let Value::Object(t) = target else {
                return Err(ApiError::internal("stored object is not a JSON object"));
            };
            let path: Vec<String> = Vec::new();
            match merge_map(t, p, kind, &path)? {
                Some(m) => Value::Object(m),
                None => {
                    return Err(ApiError::bad_request(
                        "a patch may not delete the whole object",
                    ))
                }
            }
        }
        PatchType::Apply => {
            return Err(ApiError::unsupported_media_type(
                "application/apply-patch+yaml",
            ));
        }
    };
    prune_directives(&mut out);
    Ok(out)
}

/// Removes every key starting with `$` (and list items that are bare directives).
pub fn prune_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for val in m.values_mut() {
                prune_directives(val);
            }
        }
        Value::Array(items) => {
            items.retain(|i| !is_bare_directive(i));
            for i in items.iter_mut() {
                prune_directives(i);
            }
        }
        _ => {}
    }
}

fn is_bare_directive(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| !m.is_empty() && m.keys().all(|k| k.starts_with('$')))
}

/// The merge key of a list field, as Kubernetes' `patchMergeKey` tags declare it (keyed by
/// field name and the parent kind; lists not named here are replaced whole, as atomic lists).
fn merge_key(field: &str, kind: &str, items: &[&Value]) -> Option<&'static str> {
    let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" if kind == "EndpointSlice" => None,
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" => Some("port"),
        "conditions" => Some("type"),
        "addresses" if has("type") => Some("type"),
        "taints" => Some("key"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "readinessGates" => Some("conditionType"),
        _ => None,
    }
}

/// Primitive lists whose patch strategy is `merge` (set union).
fn merges_primitives(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    prune_directives(&mut v);
    v
}

fn merge_map(
    orig: &Map<String, Value>,
    patch: &Map<String, Value>,
    kind: &str,
    path: &[String],
) -> ApiResult<Option<Map<String, Value>>> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut m = patch.clone();
            m.remove("$patch");
            let mut v = Value::Object(m);
            prune_directives(&mut v);
            return Ok(match v {
                Value::Object(m) => Some(m),
                _ => None,
            });
        }
        Some("delete") => return Ok(None),
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?} in map"
            )))
        }
    }
    let mut out = orig.clone();
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, pv) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = pv {
                orders.push((field.to_string(), order.clone()));
            }
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (out.get_mut(field), pv) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        let mut child_path = path.to_vec();
        child_path.push(key.clone());
        match pv {
            Value::Null => {
                out.remove(key);
            }
            Value::Object(pm) => match out.get(key) {
                Some(Value::Object(om)) => match merge_map(om, pm, kind, &child_path)? {
                    Some(m) => {
                        out.insert(key.clone(), Value::Object(m));
                    }
                    None => {
                        out.remove(key);
                    }
                },
                _ => {
                    if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                        out.remove(key);
                    } else {
                        out.insert(key.clone(), strip(pv));
                    }
                }
            },
            Value::Array(pl) => {
                let merged = match out.get(key) {
                    Some(Value::Array(ol)) => merge_list(ol, pl, key, kind, &child_path)?,
                    _ => merge_list(&[], pl, key, kind, &child_path)?,
                };
                out.insert(key.clone(), Value::Array(merged));
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = out.get_mut(&field) {
            reorder(list, &order, &field, kind);
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(out))
}

fn merge_list(
    orig: &[Value],
    patch: &[Value],
    field: &str,
    kind: &str,
    path: &[String],
) -> ApiResult<Vec<Value>> {
    // `[{"$patch": "replace"}, ...]`: the rest replaces the list.
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace") && is_bare_directive(i))
    {
        return Ok(patch
            .iter()
            .filter(|i| !is_bare_directive(i))
            .map(strip)
            .collect());
    }
    let all: Vec<&Value> = orig.iter().chain(patch.iter()).collect();
    let objects = !patch.is_empty() && patch.iter().all(Value::is_object);
    if objects {
        if let Some(mk) = merge_key(field, kind, &all) {
            let mut out: Vec<Value> = orig.to_vec();
            for item in patch {
                let Some(pm) = item.as_object() else { continue };
                let Some(kv) = pm.get(mk) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {pm:?} does not contain declared merge key: {mk}"
                    )));
                };
                let pos = out.iter().position(|o| o.get(mk) == Some(kv));
                let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let merged = match &out[i] {
                            Value::Object(om) => merge_map(om, pm, kind, path)?,
                            _ => Some(pm.clone()),
                        };
                        match merged {
                            Some(m) => out[i] = Value::Object(m),
                            None => {
                                out.remove(i);
                            }
                        }
                    }
                    (None, false) => out.push(strip(item)),
                }
            }
            return Ok(out);
        }
    }
    if merges_primitives(field) {
        let mut out = orig.to_vec();
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        return Ok(out);
    }
    Ok(patch
        .iter()
        .filter(|i| !is_bare_directive(i))
        .map(strip)
        .collect())
}

fn reorder(list: &mut Vec<Value>, order: &[Value], field: &str, kind: &str) {
    let all: Vec<&Value> = list.iter().chain(order.iter()).collect();
    let key = merge_key(field, kind, &all);
    let matches = |item: &Value, o: &Value| match key {
        Some(k) if o.is_object() => item.get(k).is_some() && item.get(k) == o.get(k),
        _ => item == o,
    };
    let mut rest: Vec<Value> = std::mem::take(list);
    let mut sorted = Vec::with_capacity(rest.len());
    for o in order {
        if let Some(i) = rest.iter().position(|item| matches(item, o)) {
            sorted.push(rest.remove(i));
        }
    }
    sorted.extend(rest);
    *list = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value, kind: &str) -> Value {
        apply(
            &target,
            PatchType::Strategic,
            patch.to_string().as_bytes(),
            kind,
        )
        .unwrap()
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let t = json!({"spec": {"ports": [{"port": 80}, {"port": 443}], "a": 1}});
        let out = apply(
            &t,
            PatchType::Merge,
            br#"{"spec":{"ports":[{"port":81}],"a":null}}"#,
            "Service",
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"ports": [{"port": 81}]}}));
    }

    #[test]
    fn json_patch_ops() {
        let t = json!({"metadata": {"labels": {"a": "b"}}});
        let out = apply(&t, PatchType::Json, br#"[{"op":"add","path":"/metadata/labels/c","value":"d"},{"op":"remove","path":"/metadata/labels/a"}]"#, "Service").unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"c": "d"}}}));
        assert!(apply(
            &t,
            PatchType::Json,
            br#"[{"op":"test","path":"/x","value":1}]"#,
            "Service"
        )
        .is_err());
        assert!(apply(&t, PatchType::Json, b"{}", "Service").is_err());
    }

    #[test]
    fn strategic_merges_ports_by_port_and_drops_directives() {
        let t = json!({"spec": {"ports": [
            {"port": 80, "protocol": "TCP", "nodePort": 31000, "targetPort": 80},
            {"port": 443, "protocol": "TCP", "nodePort": 31001, "targetPort": 443}]}});
        let out = smp(
            t,
            json!({"spec": {
            "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
            "ports": [{"port": 80, "targetPort": 8080}]}}),
            "Service",
        );
        assert_eq!(
            out,
            json!({"spec": {"ports": [
            {"port": 443, "protocol": "TCP", "nodePort": 31001, "targetPort": 443},
            {"port": 80, "protocol": "TCP", "nodePort": 31000, "targetPort": 8080}]}})
        );
    }

    #[test]
    fn strategic_delete_replace_and_retain() {
        let t = json!({"spec": {"ports": [{"port": 80}, {"port": 443}], "selector": {"a": "1", "b": "2"}},
                       "metadata": {"finalizers": ["x"]}});
        let out = smp(
            t.clone(),
            json!({"spec": {"ports": [{"port": 80, "$patch": "delete"}]}}),
            "Service",
        );
        assert_eq!(out["spec"]["ports"], json!([{"port": 443}]));
        let out = smp(
            t.clone(),
            json!({"spec": {"selector": {"$patch": "replace", "c": "3"}}}),
            "Service",
        );
        assert_eq!(out["spec"]["selector"], json!({"c": "3"}));
        let out = smp(
            t.clone(),
            json!({"spec": {"$retainKeys": ["ports"], "ports": [{"port": 80}]}}),
            "Service",
        );
        assert_eq!(out["spec"], json!({"ports": [{"port": 80}, {"port": 443}]}));
        let out = smp(
            t.clone(),
            json!({"metadata": {"finalizers": ["y"]}}),
            "Service",
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let out = smp(
            t.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
            "Service",
        );
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        let out = smp(
            t,
            json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 1}]}}),
            "Service",
        );
        assert_eq!(out["spec"]["ports"], json!([{"port": 1}]));
    }

    #[test]
    fn strategic_containers_by_name_and_unknown_lists_replace() {
        let t = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "b:1"}]}}, "tolerations": [{"key": "x"}]}});
        let out = smp(
            t,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}},
                                 "tolerations": [{"key": "y"}]}}),
            "Deployment",
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["image"],
            "b:2"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "a:1"
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
    }

    #[test]
    fn new_subtrees_are_stripped_of_directives() {
        let out = smp(
            json!({}),
            json!({"spec": {"$retainKeys": ["a"], "a": {"$patch": "merge", "b": 1}}}),
            "Service",
        );
        assert_eq!(out, json!({"spec": {"a": {"b": 1}}}));
        let out = apply(
            &json!({}),
            PatchType::Merge,
            br#"{"metadata":{"$x":1,"labels":{"a":"b"}}}"#,
            "Service",
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"a": "b"}}}));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchType::Merge
        );
        assert!(PatchType::from_content_type("text/plain").is_err());
    }
}
