//! The Kubernetes client against the API simulator on loopback: the `ferrolb kubeconfig`
//! recipe (checked with kubectl too), token files re-read when they rotate, TLS verification,
//! and the polling reflector for API paths that cut long-lived connections.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb::kube::reflector::{self, ReflectorSettings, Update};
use ferrolb::kube::{kubeconfig, Client, Connection, ServiceInfo, TokenSource};
use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig};
use serde_json::json;

async fn simulator(token: &str) -> ApiServer {
    ApiServer::start(ApiServerConfig {
        https: vec!["127.0.0.1:0".parse().unwrap()],
        token: Some(token.to_string()),
        ..ApiServerConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

// Multi-threaded: the test blocks on child processes while the simulator serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_command_writes_what_kubectl_and_the_daemon_use() {
    let api = simulator("s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, token, kc) = (
        dir.path().join("ca.crt"),
        dir.path().join("token"),
        dir.path().join("kubeconfig"),
    );
    api.write_ca(&ca).unwrap();
    write(&token, "s3cret\n");
    let url = api.https_url().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["kubeconfig", "--server", &url, "--ca-file"])
        .arg(&ca)
        .arg("--token-file")
        .arg(&token)
        .arg("--output")
        .arg(&kc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials must be private");

    // kubectl, an independent client, accepts it (CA verified, token from the file).
    let kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .unwrap();
    assert!(
        kubectl.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    assert!(String::from_utf8_lossy(&kubectl.stdout).contains("namespace/kube-system"));

    // And so does our client.
    let conn = kubeconfig::load(&kc, None).unwrap();
    let client = Client::new(&conn, 50.0, 50).unwrap();
    let ns: serde_json::Value = client.get("/api/v1/namespaces/default", &[]).await.unwrap();
    assert_eq!(ns["metadata"]["name"], "default");
}

#[tokio::test]
async fn a_rotated_token_file_is_read_again() {
    let api = simulator("first").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, "first");
    let ca = dir.path().join("ca.crt");
    api.write_ca(&ca).unwrap();
    let conn = Connection::from_parts(
        api.https_url().unwrap().parse().unwrap(),
        Some(token.clone()),
        Some(ca),
        false,
    );
    assert_eq!(conn.token, TokenSource::File(token.clone()));
    let client = Client::new(&conn, 50.0, 50).unwrap();
    let path = "/api/v1/namespaces/default";
    assert!(client.get::<serde_json::Value>(path, &[]).await.is_ok());
    // The file changes (a bound token rotated): the next request carries the new token, which
    // this server refuses — proof that it was read again.
    std::thread::sleep(Duration::from_millis(20));
    write(&token, "second");
    let err = client
        .get::<serde_json::Value>(path, &[])
        .await
        .expect_err("the rotated token is sent");
    assert_eq!(err.code(), Some(401), "{err}");
}

#[tokio::test]
async fn tls_is_verified_unless_skipping_is_asked_for() {
    let api = simulator("t").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    write(&token, "t");
    let url: url::Url = api.https_url().unwrap().parse().unwrap();
    let path = "/api/v1/namespaces/default";
    // No CA: the simulator's self-signed certificate is refused.
    let strict = Client::new(
        &Connection::from_parts(url.clone(), Some(token.clone()), None, false),
        50.0,
        50,
    )
    .unwrap();
    assert!(strict.get::<serde_json::Value>(path, &[]).await.is_err());
    // Explicitly insecure: accepted.
    let insecure = Client::new(
        &Connection::from_parts(url, Some(token), None, true),
        50.0,
        50,
    )
    .unwrap();
    assert!(insecure.get::<serde_json::Value>(path, &[]).await.is_ok());
}

#[tokio::test]
async fn polling_reflector_sees_changes_without_watching() {
    let api = simulator("t").await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, true).unwrap();
    let client = Client::new(&kubeconfig::load(&kc, None).unwrap(), 50.0, 50).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Update<ServiceInfo>>(16);
    let settings = ReflectorSettings {
        watch: false,
        poll_interval: Duration::from_millis(200),
        ..ReflectorSettings::default()
    };
    let task = tokio::spawn(reflector::run(client.clone(), settings, tx));
    match rx.recv().await {
        Some(Update::Replaced(list)) => assert!(list.is_empty()),
        other => panic!("first update: {other:?}"),
    }
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "polled", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    client
        .create::<serde_json::Value>("/api/v1/namespaces/default/services", &svc)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let update = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("a poll within 10 s");
        if let Some(Update::Replaced(list)) = update {
            if list.iter().any(|s| s.key.name == "polled") {
                break;
            }
        }
    }
    task.abort();
    // Polling means lists only: no request of this client asked to watch.
    assert!(api
        .requests()
        .iter()
        .all(|r| !r.query.contains("watch=true")));
}

#[test]
fn client_certificates_from_a_kubeconfig_are_loaded() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ferrolb".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
        ca = b64(&cert.pem()),
        cert = b64(&cert.pem()),
        key = b64(&key.serialize_pem()),
    );
    let conn = kubeconfig::parse(&text, Path::new("/"), None).unwrap();
    assert!(conn.client_cert.is_some() && conn.client_key.is_some());
    assert!(
        conn.http_client().is_ok(),
        "certificate, key and CA are usable"
    );
    // A key that does not parse is refused with a message naming it.
    let broken = text.replace(&b64(&key.serialize_pem()), &b64("not a key"));
    let conn = kubeconfig::parse(&broken, Path::new("/"), None).unwrap();
    let err = conn.http_client().unwrap_err().to_string();
    assert!(err.contains("client key"), "{err}");
}
