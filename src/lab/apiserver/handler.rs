//! Request handling: authentication, injected faults, routing to discovery, OpenAPI, the
//! `/_sim/…` controls and the resource verbs (get, list, watch, create, update, patch,
//! delete, deletecollection), and the request log.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::body::{full, ResponseBody};
use super::meta::{self, meta_str};
use super::patch::{self, PatchType};
use super::reqlog::{RequestLog, RequestRecord};
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::services::{self, Used};
use super::status::{success_status, ApiError, ApiResult};
use super::store::Txn;
use super::tables::{self, IncludeObject};
use super::{discovery, openapi, sim, watch};

/// The largest request body accepted (the real server's limit).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Query parameters (last value wins).
pub type Query = HashMap<String, String>;

/// How the client wants objects rendered (`Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Plain objects and lists.
    Plain,
    /// `meta.k8s.io/v1` Table.
    Table(IncludeObject),
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// A resource path, parsed.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub def: &'static ResourceDef,
    /// The namespace in the path (`None`: cluster-scoped or all namespaces).
    pub namespace: Option<String>,
    /// The object name.
    pub name: Option<String>,
    /// `status`, when the path names the subresource.
    pub subresource: Option<String>,
}

/// A JSON response.
pub fn json_response(status: u16, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

/// An error response (`Status` body, `Retry-After` for 429).
pub fn error_response(err: &ApiError) -> Response<ResponseBody> {
    let mut resp = json_response(err.code, &err.to_status());
    if let Some(s) = err.retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}

fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn truthy(q: &Query, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("1" | "true" | "True"))
}

fn render_from_accept(accept: &str, q: &Query) -> ApiResult<Render> {
    let mut table = false;
    let mut metadata = false;
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=Table") && has("g=meta.k8s.io") && has("v=v1") {
            table = true;
        } else if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList"))
            && has("g=meta.k8s.io")
            && has("v=v1")
        {
            metadata = true;
        }
    }
    if table {
        let include = IncludeObject::parse(q.get("includeObject").map(String::as_str))
            .ok_or_else(|| ApiError::bad_request("includeObject: unsupported value"))?;
        return Ok(Render::Table(include));
    }
    if metadata {
        return Ok(Render::Metadata);
    }
    Ok(Render::Plain)
}

fn authorized(shared: &Shared, req: &Request<Incoming>, tls: bool) -> bool {
    let Some(token) = shared.config.token.as_deref() else {
        return true;
    };
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) => constant_time_eq(p.as_bytes(), token.as_bytes()),
        None => !tls && !shared.config.http_requires_token,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_body(body: Incoming) -> ApiResult<Bytes> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Handles one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    tls: bool,
) -> Response<ResponseBody> {
    let mut rec = RequestRecord {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        user_agent: req
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        tls,
        ..RequestRecord::default()
    };
    let resp = dispatch(&shared, req, tls, &mut rec).await;
    rec.status = resp.status().as_u16();
    shared.log.record(rec);
    resp
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    tls: bool,
    rec: &mut RequestRecord,
) -> Response<ResponseBody> {
    if !authorized(shared, &req, tls) {
        return error_response(&ApiError::unauthorized());
    }
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim") {
        let query = parse_query(req.uri().query());
        let method = req.method().clone();
        return sim::handle(shared, &method, rest, &query);
    }
    classify(&req, rec);
    shared.faults.wait_if_stalled().await;
    if let Some(err) = shared.faults.take_failure() {
        RequestLog::bump(&shared.log.injected_failures);
        return error_response(&err);
    }
    match route(shared, req, rec).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

async fn route(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    rec: &mut RequestRecord,
) -> ApiResult<Response<ResponseBody>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method() == Method::GET;
    match segs.as_slice() {
        ["version"] if get => return Ok(json_response(200, &discovery::version())),
        ["healthz" | "livez" | "readyz"] if get => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(r);
        }
        ["api" | "apis"] if get && discovery::wants_aggregated(&header(&req, "accept")) => {
            let mut r = json_response(200, &discovery::aggregated(segs[0] == "api"));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_V2),
            );
            return Ok(r);
        }
        ["api"] if get => {
            return Ok(json_response(
                200,
                &discovery::api_versions(&shared.server_address),
            ))
        }
        ["apis"] if get => return Ok(json_response(200, &discovery::api_group_list())),
        ["apis", group] if get => {
            return discovery::api_group(group)
                .map(|g| json_response(200, &g))
                .ok_or_else(ApiError::path_not_found)
        }
        ["api", version] if get => {
            return discovery::resource_list("", version)
                .map(|l| json_response(200, &l))
                .ok_or_else(ApiError::path_not_found)
        }
        ["apis", group, version] if get => {
            return discovery::resource_list(group, version)
                .map(|l| json_response(200, &l))
                .ok_or_else(ApiError::path_not_found)
        }
        ["openapi", "v2"] if get => {
            let accept = header(&req, "accept");
            if accept.contains("protobuf") {
                let mut r = Response::new(full(Bytes::new()));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    ),
                );
                return Ok(r);
            }
            return Ok(json_response(200, &openapi::v2_json()));
        }
        ["openapi", "v3"] if get => return Ok(json_response(200, &openapi::v3_root())),
        ["openapi", "v3", rest @ ..] if get => {
            return openapi::v3_group_version(&rest.join("/"))
                .map(|d| json_response(200, &d))
                .ok_or_else(ApiError::path_not_found)
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let target = parse_target(group, version, rest)?;
    rec.api_group = target.def.group.to_string();
    rec.resource = target.def.plural.to_string();
    rec.namespace = target.namespace.clone().unwrap_or_default();
    rec.name = target.name.clone().unwrap_or_default();
    rec.subresource = target.subresource.clone().unwrap_or_default();
    let query = parse_query(req.uri().query());
    let render = render_from_accept(&header(&req, "accept"), &query)?;
    let method = req.method().clone();
    let content_type = header(&req, "content-type");
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, true) if truthy(&query, "watch") && target.subresource.is_none() => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) if truthy(&query, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) if target.def.plural != "namespaces" => "deletecollection",
        _ => return Err(ApiError::method_not_allowed(method.as_str())),
    };
    rec.verb = verb.to_string();
    if verb == "watch" {
        if let Some(name) = &target.name {
            // A watch on an item path watches the collection for that name.
            let mut query = query.clone();
            let pinned = format!("metadata.name={name}");
            let sel = match query.get("fieldSelector").filter(|s| !s.is_empty()) {
                Some(s) => format!("{s},{pinned}"),
                None => pinned,
            };
            query.insert("fieldSelector".into(), sel);
            let collection = Target {
                name: None,
                ..target.clone()
            };
            return watch::start(shared.clone(), &collection, &query, render);
        }
        return watch::start(shared.clone(), &target, &query, render);
    }
    let body = match verb {
        "create" | "update" | "patch" | "delete" | "deletecollection" => {
            read_body(req.into_body()).await?
        }
        _ => Bytes::new(),
    };
    let ctx = Ctx {
        shared,
        target: &target,
        query: &query,
        render,
        content_type: &content_type,
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    match verb {
        "get" => ctx.get(),
        "list" => ctx.list(),
        "create" => ctx.create(&body, dry_run),
        "update" => ctx.update(&body, dry_run),
        "patch" => ctx.patch(&body, &content_type, dry_run),
        "delete" => ctx.delete(&body, dry_run),
        _ => ctx.delete_collection(dry_run),
    }
}

/// Fills in the verb and resource of a request for the log (before faults can answer it).
fn classify(req: &Request<Incoming>, rec: &mut RequestRecord) {
    let segs: Vec<&str> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return,
    };
    let Ok(target) = parse_target(group, version, rest) else {
        return;
    };
    let watch = req.uri().query().is_some_and(|q| {
        parse_query(Some(q))
            .get("watch")
            .is_some_and(|w| w == "1" || w == "true")
    });
    rec.verb = match (req.method().as_str(), target.name.is_some()) {
        ("GET", true) if watch && target.subresource.is_none() => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
    .to_string();
    rec.api_group = target.def.group.to_string();
    rec.resource = target.def.plural.to_string();
    rec.namespace = target.namespace.unwrap_or_default();
    rec.name = target.name.unwrap_or_default();
    rec.subresource = target.subresource.unwrap_or_default();
}

fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Parses the part of a resource path after the group version.
pub fn parse_target(group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
    if !resources::group_version_served(group, version) {
        return Err(ApiError::path_not_found());
    }
    let find = |plural: &str| resources::find(group, version, plural);
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|d| d.namespaced) => {
            (Some((*ns).to_string()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_string()), None),
        [plural, name, sub] => (*plural, Some((*name).to_string()), Some((*sub).to_string())),
        _ => return Err(ApiError::path_not_found()),
    };
    let def = find(plural).ok_or_else(ApiError::path_not_found)?;
    if namespace.is_none() && def.namespaced && name.is_some() {
        return Err(ApiError::path_not_found());
    }
    if let Some(s) = &sub {
        if s != "status" || !def.status_subresource {
            return Err(ApiError::path_not_found());
        }
    }
    Ok(Target {
        def,
        namespace,
        name,
        subresource: sub,
    })
}

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    target: &'a Target,
    query: &'a Query,
    render: Render,
    content_type: &'a str,
}

/// The list kind of a resource: `ServiceList`.
pub fn list_kind(def: &ResourceDef) -> String {
    format!("{}List", def.kind)
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

    fn get(&self) -> ApiResult<Response<ResponseBody>> {
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

    fn list(&self) -> ApiResult<Response<ResponseBody>> {
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
                "items": selected.iter().map(|o| def.to_view(o)).collect::<Vec<_>>(),
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

    fn create(&self, body: &[u8], dry_run: bool) -> ApiResult<Response<ResponseBody>> {
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
        Ok(with_warnings(
            json_response(201, &render_one(def, &stored, self.render)),
            &warnings,
        ))
    }

    fn update(&self, body: &[u8], dry_run: bool) -> ApiResult<Response<ResponseBody>> {
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
        Ok(with_warnings(
            json_response(code, &render_one(def, &stored, self.render)),
            &warnings,
        ))
    }

    fn patch(
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
        Ok(with_warnings(
            json_response(200, &render_one(def, &stored, self.render)),
            &warnings,
        ))
    }

    fn delete(&self, body: &[u8], dry_run: bool) -> ApiResult<Response<ResponseBody>> {
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

    fn delete_collection(&self, dry_run: bool) -> ApiResult<Response<ResponseBody>> {
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
        let rv = self.shared.store.resource_version();
        Ok(json_response(
            200,
            &json!({
                "kind": list_kind(def),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted.iter().map(|o| def.to_view(o)).collect::<Vec<_>>(),
            }),
        ))
    }
}

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
fn check_fields(def: &ResourceDef, view: &mut Value, q: &Query) -> ApiResult<Vec<String>> {
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

/// The metadata fields the simulator reads must have their types (the real server's decoder
/// refuses anything else with 400).
fn validate_meta(obj: &Value) -> ApiResult<()> {
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

fn validate_name(def: &ResourceDef, name: &str) -> ApiResult<()> {
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

fn prepare_create(
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

fn prepare_update(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_targets() {
        let t = parse_target(
            "",
            "v1",
            &["namespaces", "default", "services", "web", "status"],
        )
        .unwrap();
        assert_eq!(
            (
                t.def.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("services", Some("default"), Some("web"), Some("status"))
        );
        let t = parse_target("", "v1", &["services"]).unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = parse_target("", "v1", &["namespaces", "kube-system"]).unwrap();
        assert_eq!(
            (t.def.plural, t.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let t = parse_target("", "v1", &["namespaces", "x", "status"]).unwrap();
        assert_eq!(
            (t.def.plural, t.subresource.as_deref()),
            ("namespaces", Some("status"))
        );
        assert!(parse_target("", "v1", &["services", "web"]).is_err());
        assert!(parse_target(
            "",
            "v1",
            &["namespaces", "default", "configmaps", "c", "status"]
        )
        .is_err());
        assert!(parse_target("", "v1", &["pods"]).is_err());
        assert!(parse_target(
            "apps",
            "v1",
            &["namespaces", "d", "deployments", "x", "y", "z"]
        )
        .is_err());
        let t = parse_target("", "v1", &["nodes", "n1", "status"]).unwrap();
        assert_eq!(t.def.plural, "nodes");
    }

    #[test]
    fn accept_headers() {
        let q = Query::new();
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            render_from_accept(kubectl, &q).unwrap(),
            Render::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            render_from_accept("application/json", &q).unwrap(),
            Render::Plain
        );
        assert_eq!(
            render_from_accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                &q
            )
            .unwrap(),
            Render::Metadata
        );
    }

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
