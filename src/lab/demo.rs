//! `ferrolb lab demo`: the story so far, non-interactively, on loopback. It starts the
//! Kubernetes API simulator, three `ferrolb run` daemons (this same binary) as separate
//! processes, creates LoadBalancer Services, shows the allocator writing their addresses, kills
//! the allocator's daemon with SIGKILL, measures how long the Lease takes to move and checks
//! that no address moved, then tears everything down and prints a report.
//!
//! Everything listens on 127.0.0.1 and lives in a temporary directory; no root needed. The
//! namespace lab with ARP/NDP and BGP replaces this once announcement lands.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::apiserver::{ApiServer, ApiServerConfig};
use crate::kube::client::ObjectList;
use crate::kube::{kubeconfig, Client, ServiceInfo};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A step failed.
    #[error("{step}: {reason}")]
    Step {
        /// What the demo was doing.
        step: &'static str,
        /// What went wrong.
        reason: String,
    },
}

fn fail(step: &'static str) -> impl Fn(String) -> DemoError {
    move |reason| DemoError::Step { step, reason }
}

const NODES: [&str; 3] = ["node1", "node2", "node3"];
/// TEST-NET-2 (RFC 5737) and the documentation prefix (RFC 3849): never a real LAN.
const POOL_V4: &str = "198.51.100.10-198.51.100.19";
const POOL_V6: &str = "2001:db8:100::/124";

/// A daemon process, killed if still running when dropped.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the demo and returns its report.
pub async fn run() -> Result<String, DemoError> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("ferrolb-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail("creating the work directory")(e.to_string()))?;
    let result = story(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = result?;
    let _ = writeln!(
        report,
        "\nEverything torn down; the demo took {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(report)
}

async fn story(dir: &Path) -> Result<String, DemoError> {
    let mut out = String::new();
    let token = format!("demo-{:016x}", fastrand::u64(..));
    let api = ApiServer::start(ApiServerConfig {
        https: vec!["127.0.0.1:0"
            .parse()
            .map_err(|_| fail("listen address")(String::new()))?],
        token: Some(token),
        ..ApiServerConfig::default()
    })
    .await
    .map_err(|e| fail("starting the API simulator")(e.to_string()))?;
    let kubeconfig_path = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig_path, true)
        .map_err(|e| fail("writing the kubeconfig")(e.to_string()))?;
    let url = api.https_url().unwrap_or_default();
    let _ = writeln!(out, "Kubernetes API simulator at {url}");

    let conn = kubeconfig::load(&kubeconfig_path, None)
        .map_err(|e| fail("reading the kubeconfig")(e.to_string()))?;
    let client = Client::new(&conn, 100.0, 200).map_err(|e| fail("API client")(e.to_string()))?;

    let exe =
        std::env::current_exe().map_err(|e| fail("finding the ferrolb binary")(e.to_string()))?;
    let mut daemons = Vec::new();
    for name in NODES {
        daemons.push(start_daemon(&exe, dir, name, &kubeconfig_path)?);
    }
    let _ = writeln!(
        out,
        "Started 3 daemons ({}); pool {POOL_V4}, {POOL_V6}",
        NODES.join(", ")
    );

    let leader = wait_for(Duration::from_secs(20), || lease_holder(&client))
        .await
        .ok_or_else(|| {
            fail("waiting for an allocator")("no daemon took the Lease in 20 s".into())
        })?;
    let _ = writeln!(
        out,
        "Allocator: {leader} holds the Lease kube-system/ferrolb-allocator"
    );

    let mut latencies = Vec::new();
    let names = ["web", "api", "shop", "dns", "dual"];
    for name in names {
        let t0 = Instant::now();
        create_service(&client, name).await?;
        let svc = wait_for(Duration::from_secs(10), || {
            service_with_address(&client, name)
        })
        .await
        .ok_or_else(|| {
            fail("waiting for an address")(format!("default/{name} got none in 10 s"))
        })?;
        latencies.push(t0.elapsed());
        let _ = writeln!(out, "  default/{name:<5} → {}", join(&svc.ingress));
    }
    let before = addresses(&client).await?;

    let t_kill = Instant::now();
    if let Some(pos) = daemons.iter().position(|d| d.name == leader) {
        let mut victim = daemons.remove(pos);
        let _ = victim.child.kill();
        let _ = victim.child.wait();
    }
    let _ = writeln!(
        out,
        "Killed {leader} with SIGKILL (no chance to release the Lease)"
    );
    let new_leader = wait_for(Duration::from_secs(30), || async {
        lease_holder(&client).await.filter(|h| *h != leader)
    })
    .await
    .ok_or_else(|| fail("waiting for a new allocator")("nobody took over in 30 s".into()))?;
    let takeover = t_kill.elapsed();
    let _ = writeln!(
        out,
        "{new_leader} took the Lease {:.1} s later (lease duration 4 s, measured by the new holder's clock)",
        takeover.as_secs_f64()
    );
    create_service(&client, "late").await?;
    let late = wait_for(Duration::from_secs(10), || {
        service_with_address(&client, "late")
    })
    .await
    .ok_or_else(|| fail("allocating after the takeover")("default/late got no address".into()))?;
    let _ = writeln!(
        out,
        "  default/late  → {} (allocated by {new_leader})",
        join(&late.ingress)
    );
    let after = addresses(&client).await?;
    let moved: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();

    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let _ = writeln!(out, "\nReport");
    let _ = writeln!(out, "  Services allocated:          {}", after.len());
    let _ = writeln!(
        out,
        "  Service created → address:   median {:.0} ms over {} Services",
        median.as_secs_f64() * 1000.0,
        latencies.len()
    );
    let _ = writeln!(
        out,
        "  Allocator takeover after kill: {:.1} s",
        takeover.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  Addresses moved by the takeover: {}",
        if moved.is_empty() {
            "none".to_string()
        } else {
            format!("{moved:?}")
        }
    );
    drop(daemons);
    api.shutdown();
    if !moved.is_empty() {
        return Err(fail("checking addresses")(format!(
            "addresses moved: {moved:?}\n{out}"
        )));
    }
    Ok(out)
}

fn start_daemon(
    exe: &Path,
    dir: &Path,
    name: &'static str,
    kubeconfig: &Path,
) -> Result<Daemon, DemoError> {
    let config = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"[node]
name = "{name}"

[kubernetes]
kubeconfig = {kubeconfig:?}
lease_duration = "4s"
renew_deadline = "3s"
retry_period = "1s"

[cluster]
enabled = false

[metrics]
listen = ""

[[pool]]
name = "demo"
mode = "l2"
addresses = ["{POOL_V4}", "{POOL_V6}"]
"#
    );
    std::fs::write(&config, text).map_err(|e| fail("writing a daemon config")(e.to_string()))?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))
        .map_err(|e| fail("creating a daemon log")(e.to_string()))?;
    let child = Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("FERROLB_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| fail("starting a daemon")(format!("{}: {e}", exe.display())))?;
    Ok(Daemon { name, child })
}

async fn wait_for<T, F, Fut>(deadline: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn lease_holder(client: &Client) -> Option<String> {
    let lease: Lease = client
        .get(
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ferrolb-allocator",
            &[],
        )
        .await
        .ok()?;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn create_service(client: &Client, name: &str) -> Result<(), DemoError> {
    let dual = name == "dual";
    let body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "type": "LoadBalancer",
            "selector": { "app": name },
            "ports": [{ "port": 80, "protocol": "TCP" }],
            "ipFamilyPolicy": if dual { "RequireDualStack" } else { "SingleStack" },
            "ipFamilies": if dual { json!(["IPv4", "IPv6"]) } else { json!(["IPv4"]) },
        }
    });
    client
        .create::<Service>("/api/v1/namespaces/default/services", &body)
        .await
        .map(drop)
        .map_err(|e| fail("creating a Service")(e.to_string()))
}

async fn service_with_address(client: &Client, name: &str) -> Option<ServiceInfo> {
    let svc: Service = client
        .get(&format!("/api/v1/namespaces/default/services/{name}"), &[])
        .await
        .ok()?;
    let info = ServiceInfo::from(svc);
    (!info.ingress.is_empty()).then_some(info)
}

async fn addresses(client: &Client) -> Result<BTreeMap<String, Vec<IpAddr>>, DemoError> {
    let list: ObjectList<Service> = client
        .get("/api/v1/services", &[])
        .await
        .map_err(|e| fail("listing Services")(e.to_string()))?;
    Ok(list
        .items
        .into_iter()
        .map(ServiceInfo::from)
        .map(|s| (s.key.to_string(), s.ingress))
        .collect())
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
