//! Request handling: authentication, injected faults, routing to discovery, OpenAPI, the
//! `/_sim/…` controls and the resource verbs (get, list, watch, create, update, patch,
//! delete, deletecollection), and the request log.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::body::{full, ResponseBody};
use super::reqlog::{RequestLog, RequestRecord};
use super::resources::{self, ResourceDef};
use super::server::Shared;
use super::status::{ApiError, ApiResult};
use super::tables::IncludeObject;
use super::verbs::Ctx;
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

fn authorized<B>(shared: &Shared, req: &Request<B>, tls: bool) -> bool {
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

/// What request bodies may be: hyper's, or an in-process one.
pub trait RequestBody: Body<Data = Bytes, Error = Self::E> + Send + Unpin + 'static {
    /// The body's error.
    type E: Into<Box<dyn std::error::Error + Send + Sync>>;
}

impl<B> RequestBody for B
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type E = B::Error;
}

async fn read_body<B: RequestBody>(body: B) -> ApiResult<Bytes> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Handles one request.
pub async fn handle<B: RequestBody>(
    shared: Arc<Shared>,
    req: Request<B>,
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
    // The simulator's own endpoints are not API requests: they stay out of the log.
    if !rec.path.starts_with("/_sim") {
        shared.log.record(rec);
    }
    resp
}

async fn dispatch<B: RequestBody>(
    shared: &Arc<Shared>,
    req: Request<B>,
    tls: bool,
    rec: &mut RequestRecord,
) -> Response<ResponseBody> {
    classify(&req, rec);
    if !authorized(shared, &req, tls) {
        return error_response(&ApiError::unauthorized());
    }
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim") {
        let query = parse_query(req.uri().query());
        let method = req.method().clone();
        return sim::handle(shared, &method, rest, &query);
    }
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

async fn route<B: RequestBody>(
    shared: &Arc<Shared>,
    req: Request<B>,
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
    let query = parse_query(req.uri().query());
    let render = render_from_accept(&header(&req, "accept"), &query)?;
    let method = req.method().clone();
    let content_type = header(&req, "content-type");
    let verb = verb_of(&method, &target, truthy(&query, "watch"))
        .ok_or_else(|| ApiError::method_not_allowed(method.as_str()))?;
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
    rec.content_type = content_type.clone();
    if verb == "update" || verb == "patch" {
        rec.precondition = has_precondition(&body);
    }
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

/// Whether a PUT or PATCH body pins `metadata.resourceVersion`.
fn has_precondition(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m
            .get("metadata")
            .and_then(|md| md.get("resourceVersion"))
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty()),
        Ok(Value::Array(ops)) => ops
            .iter()
            .any(|op| op["op"] == "test" && op["path"] == "/metadata/resourceVersion"),
        _ => false,
    }
}

/// The Kubernetes verb of a request on a resource path (`None`: not allowed).
fn verb_of(method: &Method, target: &Target, watch: bool) -> Option<&'static str> {
    Some(match (method, target.name.is_some()) {
        (&Method::GET, true) if watch && target.subresource.is_none() => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) if target.def.plural != "namespaces" => "deletecollection",
        _ => return None,
    })
}

/// Fills in the verb and resource of a request for the log (before faults can answer it).
fn classify<B>(req: &Request<B>, rec: &mut RequestRecord) {
    // Non-resource requests (`/version`, `/api`, `/openapi/v3`, …): the lowercased method, as
    // the real authorizer's `nonResourceURLs` rules see them.
    rec.verb = req.method().as_str().to_ascii_lowercase();
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
    let watch = truthy(&parse_query(req.uri().query()), "watch");
    rec.verb = verb_of(req.method(), &target, watch)
        .unwrap_or("")
        .to_string();
    rec.api_group = target.def.group.to_string();
    rec.resource = target.def.plural.to_string();
    rec.namespace = target.namespace.unwrap_or_default();
    rec.name = target.name.unwrap_or_default();
    rec.subresource = target.subresource.unwrap_or_default();
}

fn header<B>(req: &Request<B>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Parses a whole resource path (`/api/v1/namespaces/default/services/web`).
pub fn target_of(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api", version, rest @ ..] => parse_target("", version, rest).ok(),
        ["apis", group, version, rest @ ..] => parse_target(group, version, rest).ok(),
        _ => None,
    }
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
}
