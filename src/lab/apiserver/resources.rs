//! The kinds the simulator serves: group, version, plural, kind, scope, short names, and
//! which have a `/status` subresource. Objects are stored generically as JSON; this table is
//! all the simulator knows about a kind besides its defaulting (`services`) and printing
//! (`tables`).

use serde_json::{Map, Value};

/// One served resource (`services` in `core/v1`, `leases` in `coordination.k8s.io/v1`, …).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: &'static str,
    /// API version, `v1`.
    pub version: &'static str,
    /// The plural resource name used in paths.
    pub plural: &'static str,
    /// `singularName` in discovery.
    pub singular: &'static str,
    /// The object kind.
    pub kind: &'static str,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
    /// Discovery short names (`svc`).
    pub short_names: &'static [&'static str],
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
    /// Whether `/status` is a subresource (then the main resource ignores status changes).
    pub status_subresource: bool,
    /// Storage key: two views of one storage share it (`core/v1` and `events.k8s.io/v1` events).
    pub storage: &'static str,
    /// Whether the real server keeps `metadata.generation` for this kind.
    pub generation: bool,
    /// Whether PUT on a missing object creates it (the real strategy's AllowCreateOnUpdate).
    pub create_on_update: bool,
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

macro_rules! def {
    ($group:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr,
     $status:expr, $storage:expr, $gen:expr, $cou:expr) => {
        ResourceDef {
            group: $group,
            version: "v1",
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            status_subresource: $status,
            storage: $storage,
            generation: $gen,
            create_on_update: $cou,
        }
    };
}

/// Every served resource.
pub static RESOURCES: &[ResourceDef] = &[
    def!(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        NONE,
        false,
        "configmaps",
        false,
        false
    ),
    def!(
        "",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        NONE,
        false,
        "endpoints",
        false,
        true
    ),
    def!(
        "",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        NONE,
        false,
        "events",
        false,
        true
    ),
    def!(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        NONE,
        true,
        "namespaces",
        false,
        false
    ),
    def!(
        "",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        NONE,
        true,
        "nodes",
        false,
        false
    ),
    def!("", "secrets", "secret", "Secret", true, NONE, NONE, false, "secrets", false, false),
    def!(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        NONE,
        false,
        "serviceaccounts",
        false,
        false
    ),
    def!(
        "",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        ALL,
        true,
        "services",
        false,
        true
    ),
    def!(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        ALL,
        true,
        "deployments",
        true,
        false
    ),
    def!(
        "coordination.k8s.io",
        "leases",
        "lease",
        "Lease",
        true,
        NONE,
        NONE,
        false,
        "leases",
        false,
        true
    ),
    def!(
        "discovery.k8s.io",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        NONE,
        NONE,
        false,
        "endpointslices",
        true,
        false
    ),
    def!(
        "events.k8s.io",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        NONE,
        false,
        "events",
        false,
        true
    ),
    def!(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        NONE,
        NONE,
        false,
        "clusterrolebindings",
        false,
        true
    ),
    def!(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        NONE,
        NONE,
        false,
        "clusterroles",
        false,
        true
    ),
    def!(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        NONE,
        NONE,
        false,
        "rolebindings",
        false,
        true
    ),
    def!(
        "rbac.authorization.k8s.io",
        "roles",
        "role",
        "Role",
        true,
        NONE,
        NONE,
        false,
        "roles",
        false,
        true
    ),
];

/// The API groups other than core, in the order `/apis` lists them.
pub static GROUPS: &[&str] = &[
    "apps",
    "events.k8s.io",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
];

// === impl ResourceDef ===

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The path prefix of the group version: `/api/v1` or `/apis/apps/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The verbs the simulator serves on this resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.plural == "namespaces" {
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    /// Turns a stored object into this view (`events.k8s.io/v1` events from `core/v1`), and
    /// sets `apiVersion`/`kind`.
    pub fn to_view(&self, stored: &Value) -> Value {
        let mut out = if self.group == "events.k8s.io" {
            core_event_to_events_v1(stored)
        } else {
            stored.clone()
        };
        if let Value::Object(map) = &mut out {
            map.insert("apiVersion".into(), Value::String(self.api_version()));
            map.insert("kind".into(), Value::String(self.kind.to_string()));
        }
        out
    }

    /// Turns an object of this view into its stored form.
    pub fn from_view(&self, view: Value) -> Value {
        if self.group == "events.k8s.io" {
            events_v1_to_core_event(&view)
        } else {
            view
        }
    }

    /// Maps a field selector label of this view onto the stored form.
    pub fn field_label(&self, label: &str) -> String {
        if self.group == "events.k8s.io" {
            if let Some(rest) = label.strip_prefix("regarding.") {
                return format!("involvedObject.{rest}");
            }
            match label {
                "reportingController" => return "reportingComponent".into(),
                "deprecatedSource" => return "source".into(),
                "note" => return "message".into(),
                _ => {}
            }
        }
        label.to_string()
    }

    /// The top-level fields of this kind besides `apiVersion`, `kind` and `metadata` (others
    /// are unknown fields: dropped, warned about, or refused under `fieldValidation=Strict`).
    pub fn top_level_fields(&self) -> &'static [&'static str] {
        match (self.group, self.kind) {
            ("", "ConfigMap") => &["data", "binaryData", "immutable"],
            ("", "Secret") => &["data", "stringData", "type", "immutable"],
            ("", "ServiceAccount") => &[
                "secrets",
                "imagePullSecrets",
                "automountServiceAccountToken",
            ],
            ("", "Endpoints") => &["subsets"],
            ("", "Event") => &[
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "type",
                "eventTime",
                "series",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
            ],
            ("events.k8s.io", "Event") => &[
                "eventTime",
                "series",
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "regarding",
                "related",
                "note",
                "type",
                "deprecatedSource",
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
                "deprecatedCount",
            ],
            ("discovery.k8s.io", _) => &["addressType", "endpoints", "ports"],
            ("coordination.k8s.io", _) => &["spec"],
            ("rbac.authorization.k8s.io", "Role") => &["rules"],
            ("rbac.authorization.k8s.io", "ClusterRole") => &["rules", "aggregationRule"],
            ("rbac.authorization.k8s.io", _) => &["subjects", "roleRef"],
            _ => &["spec", "status"],
        }
    }

    /// Whether a field selector label is supported (others get 400 like the real server).
    pub fn supports_field(&self, stored_label: &str) -> bool {
        if matches!(stored_label, "metadata.name" | "metadata.namespace") {
            return true;
        }
        let extra: &[&str] = match self.storage {
            "events" => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            "services" => &["spec.type", "spec.clusterIP"],
            "nodes" => &["spec.unschedulable"],
            "secrets" => &["type"],
            "namespaces" => &["status.phase"],
            _ => &[],
        };
        extra.contains(&stored_label)
    }
}

/// Finds a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether the group version is served.
pub fn group_version_served(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

/// The primary view of a storage key (`core/v1` for events).
pub fn primary_for_storage(storage: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.storage == storage)
}

fn rename(from: &Map<String, Value>, to: &mut Map<String, Value>, pairs: &[(&str, &str)]) {
    for (a, b) in pairs {
        if let Some(v) = from.get(*a) {
            to.insert((*b).to_string(), v.clone());
        }
    }
}

const EVENT_FIELDS: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("type", "type"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// `core/v1` Event → `events.k8s.io/v1` Event.
pub fn core_event_to_events_v1(core: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(from) = core {
        rename(from, &mut out, EVENT_FIELDS);
    }
    if !out.contains_key("eventTime") {
        out.insert("eventTime".into(), Value::Null);
    }
    Value::Object(out)
}

/// `events.k8s.io/v1` Event → `core/v1` Event.
pub fn events_v1_to_core_event(v1: &Value) -> Value {
    let swapped: Vec<(&str, &str)> = EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)).collect();
    let mut out = Map::new();
    if let Value::Object(from) = v1 {
        rename(from, &mut out, &swapped);
    }
    out.insert("apiVersion".into(), Value::String("v1".into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_views() {
        let core = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Service", "name": "web"},
                          "message": "hello", "reason": "IPAllocated", "count": 2, "type": "Normal"});
        let v1 = core_event_to_events_v1(&core);
        assert_eq!(v1["regarding"]["name"], "web");
        assert_eq!(v1["note"], "hello");
        assert_eq!(v1["deprecatedCount"], 2);
        let back = events_v1_to_core_event(&v1);
        assert_eq!(back["involvedObject"], core["involvedObject"]);
        assert_eq!(back["message"], "hello");
    }

    #[test]
    fn every_kind_is_found() {
        assert!(find("", "v1", "services").is_some_and(|r| r.status_subresource));
        assert!(find("apps", "v1", "deployments").is_some());
        assert!(find("apps", "v2", "deployments").is_none());
        assert_eq!(
            find("events.k8s.io", "v1", "events").map(|r| r.field_label("regarding.name")),
            Some("involvedObject.name".to_string())
        );
    }
}
