//! Kubernetes protobuf request bodies, for the kinds kubectl's typed `create` subcommands send
//! that way (`kubectl create namespace|configmap|secret|serviceaccount|service|deployment|role|…`):
//! the `k8s\0` envelope (`runtime.Unknown`) and the fields of those kinds, decoded into the
//! JSON form the rest of the simulator works on. Responses are always JSON (kubectl accepts
//! both). Other kinds in protobuf get 415 Unsupported Media Type.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::status::{ApiError, ApiResult};

/// The field types the schemas use.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    /// `*bool`: kept when false.
    Bool,
    /// `bool`: false is the zero value, left out like JSON's `omitempty`.
    Flag,
    /// `map<string,string>`
    Map,
    /// `map<string,bytes>` (JSON: base64)
    MapBytes,
    /// `repeated string`
    Strs,
    Msg(&'static Schema),
    Msgs(&'static Schema),
    /// `IntOrString`
    IntOrStr,
}

type Schema = [(u32, &'static str, Ty)];

const OWNER_REF: &Schema = &[
    (1, "kind", Ty::Str),
    (3, "name", Ty::Str),
    (4, "uid", Ty::Str),
    (5, "apiVersion", Ty::Str),
    (6, "controller", Ty::Bool),
    (7, "blockOwnerDeletion", Ty::Bool),
];
const OBJECT_META: &Schema = &[
    (1, "name", Ty::Str),
    (2, "generateName", Ty::Str),
    (3, "namespace", Ty::Str),
    (5, "uid", Ty::Str),
    (6, "resourceVersion", Ty::Str),
    (7, "generation", Ty::Int),
    (11, "labels", Ty::Map),
    (12, "annotations", Ty::Map),
    (13, "ownerReferences", Ty::Msgs(OWNER_REF)),
    (14, "finalizers", Ty::Strs),
];
const NAMESPACE_SPEC: &Schema = &[(1, "finalizers", Ty::Strs)];
const NAMESPACE: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "spec", Ty::Msg(NAMESPACE_SPEC)),
];
const CONFIG_MAP: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "data", Ty::Map),
    (3, "binaryData", Ty::MapBytes),
    (4, "immutable", Ty::Bool),
];
const SECRET: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "data", Ty::MapBytes),
    (3, "type", Ty::Str),
    (4, "stringData", Ty::Map),
    (5, "immutable", Ty::Bool),
];
const OBJECT_REF: &Schema = &[
    (1, "kind", Ty::Str),
    (2, "namespace", Ty::Str),
    (3, "name", Ty::Str),
    (4, "uid", Ty::Str),
    (5, "apiVersion", Ty::Str),
    (6, "resourceVersion", Ty::Str),
    (7, "fieldPath", Ty::Str),
];
const LOCAL_REF: &Schema = &[(1, "name", Ty::Str)];
const SERVICE_ACCOUNT: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "secrets", Ty::Msgs(OBJECT_REF)),
    (3, "imagePullSecrets", Ty::Msgs(LOCAL_REF)),
    (4, "automountServiceAccountToken", Ty::Bool),
];
const SERVICE_PORT: &Schema = &[
    (1, "name", Ty::Str),
    (2, "protocol", Ty::Str),
    (3, "port", Ty::Int),
    (4, "targetPort", Ty::IntOrStr),
    (5, "nodePort", Ty::Int),
    (6, "appProtocol", Ty::Str),
];
const SERVICE_SPEC: &Schema = &[
    (1, "ports", Ty::Msgs(SERVICE_PORT)),
    (2, "selector", Ty::Map),
    (3, "clusterIP", Ty::Str),
    (4, "type", Ty::Str),
    (5, "externalIPs", Ty::Strs),
    (7, "sessionAffinity", Ty::Str),
    (8, "loadBalancerIP", Ty::Str),
    (9, "loadBalancerSourceRanges", Ty::Strs),
    (10, "externalName", Ty::Str),
    (11, "externalTrafficPolicy", Ty::Str),
    (12, "healthCheckNodePort", Ty::Int),
    (13, "publishNotReadyAddresses", Ty::Flag),
    (17, "ipFamilyPolicy", Ty::Str),
    (18, "clusterIPs", Ty::Strs),
    (19, "ipFamilies", Ty::Strs),
    (20, "allocateLoadBalancerNodePorts", Ty::Bool),
    (21, "loadBalancerClass", Ty::Str),
    (22, "internalTrafficPolicy", Ty::Str),
    (23, "trafficDistribution", Ty::Str),
];
const SERVICE: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "spec", Ty::Msg(SERVICE_SPEC)),
];
const POLICY_RULE: &Schema = &[
    (1, "verbs", Ty::Strs),
    (2, "apiGroups", Ty::Strs),
    (3, "resources", Ty::Strs),
    (4, "resourceNames", Ty::Strs),
    (5, "nonResourceURLs", Ty::Strs),
];
const SELECTOR_REQ: &Schema = &[
    (1, "key", Ty::Str),
    (2, "operator", Ty::Str),
    (3, "values", Ty::Strs),
];
const LABEL_SELECTOR: &Schema = &[
    (1, "matchLabels", Ty::Map),
    (2, "matchExpressions", Ty::Msgs(SELECTOR_REQ)),
];
const AGGREGATION: &Schema = &[(1, "clusterRoleSelectors", Ty::Msgs(LABEL_SELECTOR))];
const ROLE: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "rules", Ty::Msgs(POLICY_RULE)),
    (3, "aggregationRule", Ty::Msg(AGGREGATION)),
];
const SUBJECT: &Schema = &[
    (1, "kind", Ty::Str),
    (2, "apiGroup", Ty::Str),
    (3, "name", Ty::Str),
    (4, "namespace", Ty::Str),
];
const ROLE_REF: &Schema = &[
    (1, "apiGroup", Ty::Str),
    (2, "kind", Ty::Str),
    (3, "name", Ty::Str),
];
const BINDING: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "subjects", Ty::Msgs(SUBJECT)),
    (3, "roleRef", Ty::Msg(ROLE_REF)),
];
const CONTAINER_PORT: &Schema = &[
    (1, "name", Ty::Str),
    (2, "hostPort", Ty::Int),
    (3, "containerPort", Ty::Int),
    (4, "protocol", Ty::Str),
    (5, "hostIP", Ty::Str),
];
const ENV_VAR: &Schema = &[(1, "name", Ty::Str), (2, "value", Ty::Str)];
const CONTAINER: &Schema = &[
    (1, "name", Ty::Str),
    (2, "image", Ty::Str),
    (3, "command", Ty::Strs),
    (4, "args", Ty::Strs),
    (5, "workingDir", Ty::Str),
    (6, "ports", Ty::Msgs(CONTAINER_PORT)),
    (7, "env", Ty::Msgs(ENV_VAR)),
    (14, "imagePullPolicy", Ty::Str),
];
const POD_SPEC: &Schema = &[
    (2, "containers", Ty::Msgs(CONTAINER)),
    (3, "restartPolicy", Ty::Str),
    (6, "dnsPolicy", Ty::Str),
    (7, "nodeSelector", Ty::Map),
    (8, "serviceAccountName", Ty::Str),
    (20, "initContainers", Ty::Msgs(CONTAINER)),
];
const POD_TEMPLATE: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "spec", Ty::Msg(POD_SPEC)),
];
const STRATEGY: &Schema = &[(1, "type", Ty::Str)];
const DEPLOYMENT_SPEC: &Schema = &[
    (1, "replicas", Ty::Int),
    (2, "selector", Ty::Msg(LABEL_SELECTOR)),
    (3, "template", Ty::Msg(POD_TEMPLATE)),
    (4, "strategy", Ty::Msg(STRATEGY)),
    (5, "minReadySeconds", Ty::Int),
    (6, "revisionHistoryLimit", Ty::Int),
    (7, "paused", Ty::Flag),
    (9, "progressDeadlineSeconds", Ty::Int),
];
const DEPLOYMENT: &Schema = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "spec", Ty::Msg(DEPLOYMENT_SPEC)),
];
const TYPE_META: &Schema = &[(1, "apiVersion", Ty::Str), (2, "kind", Ty::Str)];
const UNKNOWN: &Schema = &[
    (1, "typeMeta", Ty::Msg(TYPE_META)),
    (3, "contentEncoding", Ty::Str),
    (4, "contentType", Ty::Str),
];

fn schema_for(kind: &str) -> Option<&'static Schema> {
    Some(match kind {
        "Namespace" => NAMESPACE,
        "ConfigMap" => CONFIG_MAP,
        "Secret" => SECRET,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Service" => SERVICE,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        "Deployment" => DEPLOYMENT,
        _ => return None,
    })
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("cannot decode the protobuf body: {what}"))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> ApiResult<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("truncated field"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field: number, and its value (varint or length-delimited bytes).
    fn field(&mut self) -> ApiResult<Option<(u32, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let num = u32::try_from(key >> 3).map_err(|_| bad("field number"))?;
        let value = match key & 7 {
            0 => Field::Varint(self.varint()?),
            2 => Field::Bytes(self.bytes()?),
            1 => {
                self.skip(8)?;
                Field::Skipped
            }
            5 => {
                self.skip(4)?;
                Field::Skipped
            }
            _ => return Err(bad("unsupported wire type")),
        };
        Ok(Some((num, value)))
    }

    fn skip(&mut self, n: usize) -> ApiResult<()> {
        self.pos = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("truncated"))?;
        Ok(())
    }
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

fn string(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8"))
}

fn map_entry(b: &[u8], bytes_values: bool) -> ApiResult<(String, Value)> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((num, f)) = r.field()? {
        match (num, f) {
            (1, Field::Bytes(b)) => k = string(b)?,
            (2, Field::Bytes(b)) if bytes_values => {
                v = Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            (2, Field::Bytes(b)) => v = Value::String(string(b)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn int_or_string(b: &[u8]) -> ApiResult<Value> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut ty, mut int, mut s) = (0, 0i64, String::new());
    while let Some((num, f)) = r.field()? {
        match (num, f) {
            (1, Field::Varint(v)) => ty = v,
            (2, Field::Varint(v)) => int = v as i32 as i64,
            (3, Field::Bytes(b)) => s = string(b)?,
            _ => {}
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(int) })
}

fn message(b: &[u8], schema: &Schema, depth: usize) -> ApiResult<Map<String, Value>> {
    if depth > 16 {
        return Err(bad("nested too deep"));
    }
    let mut out = Map::new();
    let mut r = Reader { buf: b, pos: 0 };
    while let Some((num, f)) = r.field()? {
        let Some((_, name, ty)) = schema.iter().find(|(n, _, _)| *n == num) else {
            continue;
        };
        let name = (*name).to_string();
        match (ty, f) {
            (Ty::Str, Field::Bytes(b)) => {
                let s = string(b)?;
                if !s.is_empty() {
                    out.insert(name, json!(s));
                }
            }
            (Ty::Int, Field::Varint(v)) => {
                if v != 0 {
                    out.insert(name, json!(v as i64));
                }
            }
            (Ty::Bool, Field::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (Ty::Flag, Field::Varint(v)) => {
                if v != 0 {
                    out.insert(name, json!(true));
                }
            }
            (Ty::Map | Ty::MapBytes, Field::Bytes(b)) => {
                let (k, v) = map_entry(b, matches!(ty, Ty::MapBytes))?;
                let entry = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(k, v);
                }
            }
            (Ty::Strs, Field::Bytes(b)) => {
                let s = string(b)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(json!(s));
                }
            }
            (Ty::Msg(inner), Field::Bytes(b)) => {
                out.insert(name, Value::Object(message(b, inner, depth + 1)?));
            }
            (Ty::Msgs(inner), Field::Bytes(b)) => {
                let m = Value::Object(message(b, inner, depth + 1)?);
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(m);
                }
            }
            (Ty::IntOrStr, Field::Bytes(b)) => {
                out.insert(name, int_or_string(b)?);
            }
            _ => return Err(bad("unexpected wire type for a field")),
        }
    }
    Ok(out)
}

/// Decodes a `k8s\0`-prefixed protobuf body into its JSON form.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(b"k8s\x00")
        .ok_or_else(|| bad("missing the k8s protobuf envelope"))?;
    let envelope = Value::Object(message(rest, UNKNOWN, 0)?);
    let mut r = Reader { buf: rest, pos: 0 };
    let mut raw: &[u8] = &[];
    while let Some((num, f)) = r.field()? {
        if let (2, Field::Bytes(b)) = (num, f) {
            raw = b;
        }
    }
    let api_version = envelope["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let kind = envelope["typeMeta"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let schema = schema_for(&kind).ok_or_else(|| {
        ApiError::unsupported_media_type(&format!(
            "application/vnd.kubernetes.protobuf (kind {kind}: the simulator decodes protobuf only for Namespace, ConfigMap, Secret, ServiceAccount, Service, Deployment and RBAC kinds)"
        ))
    })?;
    let mut obj = message(raw, schema, 0)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(num: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(num) << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    #[test]
    fn decodes_a_configmap() {
        let mut meta = Vec::new();
        field(1, b"cm1", &mut meta);
        field(3, b"", &mut meta);
        let mut entry = Vec::new();
        field(1, b"a", &mut entry);
        field(2, b"b", &mut entry);
        let mut cm = Vec::new();
        field(1, &meta, &mut cm);
        field(2, &entry, &mut cm);
        let mut tm = Vec::new();
        field(1, b"v1", &mut tm);
        field(2, b"ConfigMap", &mut tm);
        let mut unknown = Vec::new();
        field(1, &tm, &mut unknown);
        field(2, &cm, &mut unknown);
        let mut body = b"k8s\x00".to_vec();
        body.extend(unknown);
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn garbage_is_a_bad_request() {
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\x00\x0a\xff").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\x00\x0a\x05\x0a\x02v1").unwrap_err().code, 400);
        let mut body = b"k8s\x00".to_vec();
        let mut tm = Vec::new();
        field(2, b"Pod", &mut tm);
        field(1, &tm, &mut body);
        assert_eq!(decode(&body).unwrap_err().code, 415);
    }
}
