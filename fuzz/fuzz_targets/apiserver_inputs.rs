//! What clients send the API simulator: protobuf bodies, label and field selectors, and
//! patches of every type never panic, and patches never leave a `$` directive behind.
#![no_main]
use ferrolb::lab::apiserver::patch::{self, PatchType};
use ferrolb::lab::apiserver::resources;
use ferrolb::lab::apiserver::selectors::{FieldSelector, LabelSelector};
use libfuzzer_sys::fuzz_target;

fn has_directive(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('$') || has_directive(v)),
        serde_json::Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = ferrolb::lab::apiserver::protobuf::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(sel) = LabelSelector::parse(text) {
            sel.matches(&serde_json::json!({"metadata": {"labels": {"a": "b"}}}));
        }
        if let Some(def) = resources::find("", "v1", "services") {
            let _ = FieldSelector::parse(text, def);
        }
    }
    let target = serde_json::json!({"metadata": {"name": "x", "finalizers": ["a"]},
        "spec": {"ports": [{"port": 80, "nodePort": 30000}], "selector": {"a": "b"}}});
    for ty in [PatchType::Merge, PatchType::Strategic, PatchType::Json] {
        if let Ok(out) = patch::apply(&target, ty, data, "Service") {
            assert!(!has_directive(&out), "{out}");
        }
    }
});
