//! OpenAPI documents, as much as kubectl needs for `apply` with validation on:
//!
//! - `/openapi/v3` lists a document per group version; each document has, for every kind, the
//!   object path with a PATCH operation tagged `x-kubernetes-group-version-kind` that accepts
//!   the `fieldValidation` query parameter. kubectl then leaves validation to the server
//!   (`fieldValidation=Strict`). The PATCH operation does not offer strategic merge, so kubectl
//!   computes `apply` patches from its built-in types instead of from schemas we do not have.
//! - `/openapi/v2` is an empty document (an empty protobuf message, or `{}`-like JSON): kubectl
//!   loads it before validating, and skips client-side validation of kinds it does not list.

use serde_json::{json, Map, Value};

use super::discovery::GIT_VERSION;
use super::resources::RESOURCES;

/// A stable hash for `serverRelativeURL` (the documents never change).
const HASH: &str = "5A3F1D5C2B8E4F6A";

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the paths of the group-version documents.
pub fn v3_root() -> Value {
    let mut paths = Map::new();
    for def in RESOURCES {
        let key = gv_key(def.group, def.version);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={HASH}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
pub fn v3_group_version(path: &str) -> Option<Value> {
    let mut paths = Map::new();
    for def in RESOURCES
        .iter()
        .filter(|d| gv_key(d.group, d.version) == path)
    {
        let prefix = def.group_version_path();
        let item = if def.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", def.plural)
        } else {
            format!("{prefix}/{}/{{name}}", def.plural)
        };
        let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ]);
        let body = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
        }});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", def.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "responses": ok,
            })
        };
        let mut patch = op("patch");
        patch["parameters"] = params;
        patch["requestBody"] = body;
        paths.insert(
            item,
            json!({"get": op("get"), "put": op("put"), "delete": op("delete"), "patch": patch}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// `/openapi/v2` as JSON (an empty Swagger document).
pub fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": {}, "definitions": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_has_a_document() {
        let root = v3_root();
        for key in root["paths"].as_object().unwrap().keys() {
            let doc = v3_group_version(key).unwrap();
            assert!(!doc["paths"].as_object().unwrap().is_empty());
        }
        let core = v3_group_version("api/v1").unwrap();
        let svc = &core["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
        assert_eq!(svc["x-kubernetes-group-version-kind"]["kind"], "Service");
        assert!(v3_group_version("apis/nope/v1").is_none());
    }
}
