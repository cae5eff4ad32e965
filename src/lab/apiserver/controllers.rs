//! The few controller behaviours the simulator plays, because clients wait for them: the
//! service-account token controller fills `kubernetes.io/service-account-token` Secrets
//! (`data.token`, `data.ca.crt`, `data.namespace`) once their ServiceAccount exists — as a
//! separate write after the one that created them, as in a real cluster. The token is the
//! simulator's bearer token, so a kubeconfig built from such a Secret works against it. With
//! `lab_endpoints`, the lab's endpoint controller runs too (see `endpoints`).

use base64::Engine;
use serde_json::{json, Value};

use super::meta::{meta_str, new_uid};
use super::server::Shared;

/// The Secret type the token controller fills.
pub const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME: &str = "kubernetes.io/service-account.name";
const SA_UID: &str = "kubernetes.io/service-account.uid";

/// Runs after a committed write to `storage` in namespace `ns`.
pub(crate) fn after_write(shared: &Shared, storage: &str, ns: &str) {
    if storage == "secrets" || storage == "serviceaccounts" {
        fill_tokens(shared, ns);
    }
    super::endpoints::after_write(shared, storage);
}

fn fill_tokens(shared: &Shared, ns: &str) {
    let b64 = |s: &str| json!(base64::engine::general_purpose::STANDARD.encode(s));
    let token = shared
        .config
        .token
        .clone()
        .unwrap_or_else(|| format!("sim-{}", new_uid()));
    let result = shared.store.transact(|txn| {
        let mut pending: Vec<(String, Value)> = Vec::new();
        for secret in txn.iter("secrets", Some(ns)) {
            if secret["type"] != SA_TOKEN_TYPE || secret["data"].get("token").is_some() {
                continue;
            }
            let Some(sa_name) = secret["metadata"]["annotations"][SA_NAME].as_str() else {
                continue;
            };
            let Some(sa) = txn.get("serviceaccounts", ns, sa_name) else {
                continue;
            };
            let mut s = (**secret).clone();
            if !s["data"].is_object() {
                s["data"] = json!({});
            }
            s["data"]["token"] = b64(&token);
            s["data"]["ca.crt"] = b64(&shared.ca_pem);
            s["data"]["namespace"] = b64(ns);
            s["metadata"]["annotations"][SA_UID] = json!(meta_str(&sa, "uid"));
            pending.push((meta_str(secret, "name").to_string(), s));
        }
        for (name, s) in pending {
            txn.put("secrets", ns, &name, s);
        }
        Ok(())
    });
    if let Err(error) = result {
        tracing::debug!(%error, "token controller");
    }
}
