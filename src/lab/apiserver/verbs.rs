//! The resource verbs: get, list (selectors, pagination, past versions), create, update,
//! patch, delete and deletecollection, each one store transaction.

use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::Response;
use serde_json::{json, Value};

use super::body::ResponseBody;
use super::controllers;
use super::handler::{json_response, Query, Render, Target};
use super::meta::{self, meta_str};
use super::patch::{self, PatchType};
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::status::{success_status, ApiError, ApiResult};
use super::strategy::{check_fields, prepare_create, prepare_update, validate_meta, validate_name};
use super::tables;

pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) target: &'a Target,
    pub(crate) query: &'a Query,
    pub(crate) render: Render,
    pub(crate) content_type: &'a str,
}

/// The list kind of a resource: `ServiceList`.
pub fn list_kind(def: &ResourceDef) -> String {
    format!("{}List", def.kind)
}

/// An item of a typed list: the object without `apiVersion` and `kind` (the real server's
/// lists leave them out; kubectl adds them back for `-o json`).
fn list_item(def: &ResourceDef, stored: &Value) -> Value {
    let mut v = def.to_view(stored);
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Renders one stored object for the response.
pub fn render_one(def: &ResourceDef, stored: &Value, render: Render) -> Value {
    let view = def.to_view(stored);
    match render {
        Render::Plain => view,
        Render::Metadata => tables::partial_metadata(&view),
        Render::Table(include) => {
            let rv = meta_str(&view, "resourceVersion").to_string();
            let row = tables::row(def, stored, &view, include);
            tables::table(def, vec![row], true, json!({"resourceVersion": rv}))
        }
    }
}

fn body_object(body: &[u8], content_type: &str) -> ApiResult<Value> {
    let base = content_type.split(';').next().unwrap_or("").trim();
    if base == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(body);
    }
    if !(base.is_empty() || base == "application/json" || base == "*/*") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

fn parse_rv(s: &str) -> ApiResult<u64> {
    s.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version: {s:?}: must be a valid resource version"
        ))
    })
}

/// The continue token: the version the list was taken at and the last key returned.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{ns}/{name}\u{0}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let start = start.trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

// === impl Ctx ===

impl Ctx<'_> {
    fn def(&self) -> &'static ResourceDef {
        self.target.def
    }

    fn ns(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    fn not_found(&self) -> ApiError {
        ApiError::not_found(self.def().group, self.def().plural, self.name())
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels =
            LabelSelector::parse(self.query.get("labelSelector").map_or("", String::as_str))?;
        let fields = FieldSelector::parse(
            self.query.get("fieldSelector").map_or("", String::as_str),
            self.def(),
        )?;
        Ok((labels, fields))
    }

    pub(crate) fn get(&self) -> ApiResult<Response<ResponseBody>> {
        let obj = self
            .shared
            .store
            .get(self.def().storage, self.ns(), self.name())
            .ok_or_else(|| self.not_found())?;
        Ok(json_response(
            200,
            &render_one(self.def(), &obj, self.render),
        ))
    }

    pub(crate) fn list(&self) -> ApiResult<Response<ResponseBody>> {
        let def = self.def();
        let (labels, fields) = self.selectors()?;
        let limit: usize = match self.query.get("limit") {
            Some(l) if !l.is_empty() => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
            _ => 0,
        };
        let rv_param = self
            .query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let rv_match = self
            .query
            .get("resourceVersionMatch")
            .map(String::as_str)
            .unwrap_or("");
        let ns = self.target.namespace.as_deref();
        let cont = self.query.get("continue").filter(|c| !c.is_empty());
        let (items, list_rv, after) = if let Some(token) = cont {
            if !rv_param.is_empty() && rv_param != "0" {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start_ns, start_name) = decode_continue(token)?;
            let items = self.shared.store.list_at(def.storage, ns, rv).map_err(|_| {
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            })?;
            (items, rv, Some((start_ns, start_name)))
        } else {
            match rv_match {
                "" | "NotOlderThan" => {
                    if rv_match == "NotOlderThan" && rv_param.is_empty() {
                        return Err(ApiError::bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided"));
                    }
                    if !rv_param.is_empty() {
                        parse_rv(rv_param)?;
                    }
                    let (items, rv) = self.shared.store.list(def.storage, ns);
                    (items, rv, None)
                }
                "Exact" => {
                    if rv_param.is_empty() || rv_param == "0" {
                        return Err(ApiError::bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\" or unset"));
                    }
                    let rv = parse_rv(rv_param)?;
                    if rv > self.shared.store.resource_version() {
                        return Err(ApiError::timeout(format!("Too large resource version: {rv}, current: {}", self.shared.store.resource_version())));
                    }
                    (self.shared.store.list_at(def.storage, ns, rv)?, rv, None)
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
                    )))
                }
            }
        };
        let mut selected: Vec<Arc<Value>> = items
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
            .filter(|o| match &after {
                Some((sns, sname)) => {
                    (meta_str(o, "namespace"), meta_str(o, "name")) > (sns.as_str(), sname.as_str())
                }
                None => true,
            })
            .collect();
        let mut list_meta = json!({"resourceVersion": list_rv.to_string()});
        // `resourceVersion=0` is served from the watch cache, which ignores `limit`.
        let limit = if rv_param == "0" && cont.is_none() {
            0
        } else {
            limit
        };
        if limit > 0 && selected.len() > limit {
            let remaining = selected.len() - limit;
            selected.truncate(limit);
            if let Some(last) = selected.last() {
                list_meta["continue"] = json!(encode_continue(
                    list_rv,
                    meta_str(last, "namespace"),
                    meta_str(last, "name")
                ));
                if labels.is_empty() && fields.0.is_empty() {
                    list_meta["remainingItemCount"] = json!(remaining);
                }
            }
        }
        let body = match self.render {
            Render::Table(include) => {
                let rows = selected
                    .iter()
                    .map(|o| tables::row(def, o, &def.to_view(o), include))
                    .collect();
                tables::table(def, rows, true, list_meta)
            }
            Render::Metadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta,
                "items": selected.iter().map(|o| tables::partial_metadata(&def.to_view(o))).collect::<Vec<_>>(),
            }),
            Render::Plain => json!({
                "kind": list_kind(def),
                "apiVersion": def.api_version(),
                "metadata": list_meta,
                "items": selected.iter().map(|o| list_item(def, o)).collect::<Vec<_>>(),
            }),
        };
        Ok(json_response(200, &body))
    }

    fn check_type(&self, obj: &Value) -> ApiResult<()> {
        let def = self.def();
        if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
            if kind != def.kind {
                return Err(ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type {}): {kind}",
                    def.kind
                )));
            }
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
            if av != def.api_version() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    def.api_version()
                )));
            }
        }
        validate_meta(obj)
    }

    pub(crate) fn create(&self, body: &[u8], dry_run: bool) -> ApiResult<Response<ResponseBody>> {
        let def = self.def();
        if def.namespaced && self.target.namespace.is_none() {
            return Err(ApiError::method_not_allowed("POST"));
        }
        let mut view = body_object(body, self.content_type)?;
        self.check_type(&view)?;
        let warnings = check_fields(def, &mut view, self.query)?;
        let mut obj = def.from_view(view);
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let generate = meta_str(&obj, "generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    def.group,
                    def.kind,
                    "",
                    vec![super::status::Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
            name = format!("{generate}{}", meta::name_suffix());
        }
        let obj_ns = meta_str(&obj, "namespace").to_string();
        if def.namespaced && !obj_ns.is_empty() && obj_ns != self.ns() {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
        validate_name(def, &name)?;
        let shared = self.shared;
        let ns = self.ns().to_string();
        let stored = shared.store.transact_opt(!dry_run, |txn| {
            if def.namespaced && txn.get("namespaces", "", &ns).is_none() {
                return Err(ApiError::not_found("", "namespaces", &ns));
            }
            if txn.get(def.storage, &ns, &name).is_some() {
                return Err(ApiError::already_exists(def.group, def.plural, &name));
            }
            let mut obj = obj;
            prepare_create(def, &mut obj, &name, &ns, txn, shared)?;
            Ok(txn.put(def.storage, &ns, &name, obj))
        })?;
        if !dry_run {
            controllers::after_write(shared, def.storage, &ns);
        }
        Ok(with_warnings(
            json_response(201, &render_one(def, &stored, self.render)),
            &warnings,
        ))
    }

    pub(crate) fn update(&self, body: &[u8], dry_run: bool) -> ApiResult<Response<ResponseBody>> {
        let def = self.def();
        let mut view = body_object(body, self.content_type)?;
        self.check_type(&view)?;
        let warnings = check_fields(def, &mut view, self.query)?;
        let new = def.from_view(view);
        let body_name = meta_str(&new, "name");
        if body_name != self.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let body_ns = meta_str(&new, "namespace");
        if def.namespaced && !body_ns.is_empty() && body_ns != self.ns() {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
        let status_only = self.target.subresource.is_some();
        let (ns, name, shared) = (self.ns().to_string(), self.name().to_string(), self.shared);
        let (code, stored) = shared.store.transact_opt(!dry_run, |txn| {
            let Some(old) = txn.get(def.storage, &ns, &name) else {
                if def.create_on_update && !status_only {
                    if def.namespaced && txn.get("namespaces", "", &ns).is_none() {
                        return Err(ApiError::not_found("", "namespaces", &ns));
                    }
                    let mut obj = new;
                    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    prepare_create(def, &mut obj, &name, &ns, txn, shared)?;
                    return Ok((201, txn.put(def.storage, &ns, &name, obj)));
                }
                return Err(ApiError::not_found(def.group, def.plural, &name));
            };
            let want_rv = meta_str(&new, "resourceVersion");
            if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(def.group, def.plural, &name));
            }
            let obj = prepare_update(def, &old, new, status_only, txn, shared)?;
            Ok((200, txn.put(def.storage, &ns, &name, obj)))
        })?;
        if !dry_run {
            controllers::after_write(shared, def.storage, &ns);
        }
        Ok(with_warnings(
            json_response(code, &render_one(def, &stored, self.render)),
            &warnings,
        ))
    }

    pub(crate) fn patch(
        &self,
        body: &[u8],
        content_type: &str,
        dry_run: bool,
    ) -> ApiResult<Response<ResponseBody>> {
        let def = self.def();
        let patch_type = PatchType::from_content_type(content_type)?;
        let mut warnings = Vec::new();
        let status_only = self.target.subresource.is_some();
        let (ns, name, shared) = (self.ns().to_string(), self.name().to_string(), self.shared);
        let stored = shared.store.transact_opt(!dry_run, |txn| {
            let old = txn
                .get(def.storage, &ns, &name)
                .ok_or_else(|| ApiError::not_found(def.group, def.plural, &name))?;
            let view = def.to_view(&old);
            let mut patched = patch::apply(&view, patch_type, body, def.kind)?;
            warnings = check_fields(def, &mut patched, self.query)?;
            if !patched.is_object() {
                return Err(ApiError::bad_request("the patch must leave a JSON object"));
            }
            validate_meta(&patched)?;
            let want_rv = meta_str(&patched, "resourceVersion");
            if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(def.group, def.plural, &name));
            }
            let patched_name = meta_str(&patched, "name");
            if patched_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({patched_name}) does not match the name on the URL ({name})"
                )));
            }
            let new = def.from_view(patched);
            let obj = prepare_update(def, &old, new, status_only, txn, shared)?;
            Ok(txn.put(def.storage, &ns, &name, obj))
        })?;
        if !dry_run {
            controllers::after_write(shared, def.storage, &ns);
        }
        Ok(with_warnings(
            json_response(200, &render_one(def, &stored, self.render)),
            &warnings,
        ))
    }

    pub(crate) fn delete(&self, body: &[u8], dry_run: bool) -> ApiResult<Response<ResponseBody>> {
        let def = self.def();
        let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("cannot decode DeleteOptions: {e}")))?
        };
        let dry_run = dry_run
            || opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let (ns, name) = (self.ns().to_string(), self.name().to_string());
        if def.storage == "namespaces"
            && ["default", "kube-system", "kube-public"].contains(&name.as_str())
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let deleted = self.shared.store.transact_opt(!dry_run, |txn| {
            let old = txn
                .get(def.storage, &ns, &name)
                .ok_or_else(|| ApiError::not_found(def.group, def.plural, &name))?;
            let pre = &opts["preconditions"];
            if let Some(uid) = pre["uid"].as_str() {
                if uid != meta_str(&old, "uid") {
                    return Err(ApiError::conflict_message(def.group, def.plural, &name, &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&old, "uid")
                    )));
                }
            }
            if let Some(rv) = pre["resourceVersion"].as_str() {
                if rv != meta_str(&old, "resourceVersion") {
                    return Err(ApiError::conflict_message(def.group, def.plural, &name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta_str(&old, "resourceVersion")
                    )));
                }
            }
            if def.storage == "namespaces" {
                for other in resources::RESOURCES.iter().filter(|r| r.namespaced && resources::primary_for_storage(r.storage) == Some(*r)) {
                    let names: Vec<String> = txn.iter(other.storage, Some(&name)).map(|o| meta_str(o, "name").to_string()).collect();
                    for n in names {
                        txn.delete(other.storage, &name, &n);
                    }
                }
            }
            txn.delete(def.storage, &ns, &name)
                .ok_or_else(|| ApiError::not_found(def.group, def.plural, &name))
        })?;
        if !dry_run {
            controllers::after_write(self.shared, def.storage, &ns);
        }
        if self.render == Render::Plain {
            let view = def.to_view(&deleted);
            if def.storage == "namespaces" || def.storage == "services" || def.storage == "nodes" {
                return Ok(json_response(200, &view));
            }
            return Ok(json_response(
                200,
                &success_status(&name, def.group, def.plural, meta_str(&deleted, "uid")),
            ));
        }
        Ok(json_response(200, &render_one(def, &deleted, self.render)))
    }

    pub(crate) fn delete_collection(&self, dry_run: bool) -> ApiResult<Response<ResponseBody>> {
        let def = self.def();
        let (labels, fields) = self.selectors()?;
        let ns = self.target.namespace.clone();
        let deleted = self.shared.store.transact_opt(!dry_run, |txn| {
            let names: Vec<(String, String)> = txn
                .iter(def.storage, ns.as_deref())
                .filter(|o| labels.matches(o) && fields.matches(o))
                .map(|o| {
                    (
                        meta_str(o, "namespace").to_string(),
                        meta_str(o, "name").to_string(),
                    )
                })
                .collect();
            Ok(names
                .into_iter()
                .filter_map(|(n, name)| txn.delete(def.storage, &n, &name))
                .collect::<Vec<_>>())
        })?;
        if !dry_run {
            controllers::after_write(self.shared, def.storage, ns.as_deref().unwrap_or(""));
        }
        let rv = self.shared.store.resource_version();
        Ok(json_response(
            200,
            &json!({
                "kind": list_kind(def),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted.iter().map(|o| list_item(def, o)).collect::<Vec<_>>(),
            }),
        ))
    }
}

/// Adds `Warning: 299 - "…"` headers.
fn with_warnings(mut resp: Response<ResponseBody>, warnings: &[String]) -> Response<ResponseBody> {
    for w in warnings {
        let text = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default", "web");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default".into(), "web".into())
        );
        assert!(decode_continue("garbage!").is_err());
    }
}
