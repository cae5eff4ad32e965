//! The API simulator driven by the real `kubectl` (`/usr/bin/kubectl`, a dispatcher that
//! picks its client version from the server's `/version`): apply, get (server-side tables),
//! get -w, patch (merge, strategic, status), describe with Events, delete, HTTPS with tokens.
//! Our own client agreeing with our own server would prove nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig};
use serde_json::Value;

const KUBECTL: &str = "/usr/bin/kubectl";
const TOKEN: &str = "test-token-0123";

/// A simulator on loopback (HTTP and HTTPS), kubeconfigs for it, and a scratch directory.
/// Dropping it shuts the simulator down.
struct Lab {
    sim: Option<ApiServer>,
    rt: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
    https: PathBuf,
    http: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Lab {
    /// `None` (and a note) when kubectl is not installed.
    fn start() -> Option<Lab> {
        if !Path::new(KUBECTL).exists() {
            eprintln!("skipped: {KUBECTL} is not installed");
            return None;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = rt
            .block_on(ApiServer::start(ApiServerConfig {
                http: vec!["127.0.0.1:0".parse().unwrap()],
                https: vec!["127.0.0.1:0".parse().unwrap()],
                token: Some(TOKEN.into()),
                ..ApiServerConfig::default()
            }))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let https = dir.path().join("kubeconfig");
        let http = dir.path().join("kubeconfig-http");
        sim.write_kubeconfig(&https, true).unwrap();
        sim.write_kubeconfig(&http, false).unwrap();
        Some(Lab {
            sim: Some(sim),
            rt: Some(rt),
            dir,
            https,
            http,
        })
    }

    fn sim(&self) -> &ApiServer {
        self.sim.as_ref().unwrap()
    }

    fn command(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--request-timeout=20s")
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    fn run_with(&self, kubeconfig: &Path, args: &[&str]) -> Out {
        let mut child = self
            .command(kubeconfig, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kubectl {args:?} did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs kubectl over HTTPS with the token; panics unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run_with(&self.https, args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The row of `name` in kubectl's table output, split into columns.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| {
            l.split_whitespace().next() == Some(name) || l.split_whitespace().nth(1) == Some(name)
        })
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: https
    port: 443
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ferrolb
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ferrolb
rules:
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services/status"]
  verbs: ["update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ferrolb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ferrolb
subjects:
- kind: ServiceAccount
  name: ferrolb
  namespace: kube-system
---
apiVersion: v1
kind: Secret
metadata:
  name: ferrolb-token
  namespace: kube-system
  annotations:
    kubernetes.io/service-account.name: ferrolb
type: kubernetes.io/service-account-token
data:
  token: dG9rZW4=
"#;

#[test]
fn apply_get_patch_status_and_delete() {
    let Some(lab) = Lab::start() else { return };
    let manifest = lab.file("m.yaml", MANIFEST);
    // Without --validate=false.
    let out = lab.ok(&["apply", "-f", &manifest]);
    for line in [
        "service/web created",
        "deployment.apps/web created",
        "serviceaccount/ferrolb created",
        "clusterrole.rbac.authorization.k8s.io/ferrolb created",
        "clusterrolebinding.rbac.authorization.k8s.io/ferrolb created",
        "secret/ferrolb-token created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    // A typo is refused (kubectl validates with fieldValidation=Strict) ...
    let typo = lab.file(
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndta:\n  k: v\n",
    );
    let out = lab.run_with(&lab.https, &["apply", "-f", &typo]);
    assert!(
        !out.ok && out.stderr.contains("unknown field \"dta\""),
        "{}",
        out.stderr
    );
    // ... unless validation is turned down to a warning.
    let out = lab.run_with(&lab.https, &["apply", "--validate=warn", "-f", &typo]);
    assert!(
        out.ok && out.stderr.contains("unknown field \"dta\""),
        "{}",
        out.stderr
    );
    // Applying again changes nothing.
    let again = lab.ok(&["apply", "-f", &manifest]);
    assert_eq!(again.matches("unchanged").count(), 6, "{again}");

    // Server-side printing: the columns kubectl shows for Services.
    let table = lab.ok(&["get", "svc"]);
    assert_eq!(
        header(&table),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let r = row(&table, "web");
    assert_eq!(r[1], "LoadBalancer");
    assert!(r[2].starts_with("10.96."), "{table}");
    assert_eq!(r[3], "<pending>");
    let svc = lab.json(&["get", "svc", "web"]);
    let np = |i: usize| svc["spec"]["ports"][i]["nodePort"].as_u64().unwrap();
    assert_eq!(r[4], format!("80:{}/TCP,443:{}/TCP", np(0), np(1)));
    let wide = lab.ok(&["get", "svc", "-o", "wide"]);
    assert_eq!(row(&wide, "web").last().unwrap(), "app=web");
    let deploy = lab.ok(&["get", "deploy"]);
    assert_eq!(
        header(&deploy),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(row(&deploy, "web")[1], "0/2");

    // The allocator's status write, as kubectl does it.
    lab.ok(&[
        "patch",
        "svc",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"},{"ip":"2001:db8::10"}]}}}"#,
    ]);
    let table = lab.ok(&["get", "svc", "web"]);
    assert_eq!(row(&table, "web")[3], "192.0.2.10,2001:db8::10");

    // -o json / -o yaml.
    let svc = lab.json(&["get", "svc", "web"]);
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.10"
    );
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert!(
        svc["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let yaml = lab.ok(&["get", "svc", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("ip: 192.0.2.10") && yaml.contains("kind: Service"),
        "{yaml}"
    );

    // Merge and strategic patches; directives are honoured and never stored.
    lab.ok(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ]);
    let out = lab.ok(&[
        "patch", "svc", "web", "-p",
        r#"{"spec":{"$setElementOrder/ports":[{"port":443},{"port":80}],"ports":[{"port":80,"targetPort":9090}]}}"#,
    ]);
    assert!(out.contains("service/web patched"), "{out}");
    let svc = lab.json(&["get", "svc", "web"]);
    assert_eq!(svc["metadata"]["labels"]["tier"], "front");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], 9090);
    assert_eq!(
        svc["spec"]["ports"][1]["nodePort"],
        np(0),
        "node ports survive a patch"
    );
    assert!(!svc.to_string().contains('$'), "{svc}");
    let out = lab.ok(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ]);
    assert!(out.contains("patched (no change)"), "{out}");
    let out = lab.ok(&[
        "patch",
        "svc",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/labels/tier"}]"#,
    ]);
    assert!(out.contains("patched"), "{out}");
    // The status survived every patch of the main resource.
    assert_eq!(
        lab.json(&["get", "svc", "web"])["status"]["loadBalancer"]["ingress"][1]["ip"],
        "2001:db8::10"
    );

    // Re-apply after editing: port https removed, a target port changed, a label added.
    let edited = MANIFEST
        .replace(
            "targetPort: 8080\n  - name: https\n    port: 443\n",
            "targetPort: 8081\n",
        )
        .replace(
            "labels: {app: web}\nspec:\n  type",
            "labels: {app: web, stage: two}\nspec:\n  type",
        )
        .replace("image: nginx:1.27", "image: nginx:1.28");
    let edited = lab.file("m2.yaml", &edited);
    let out = lab.ok(&["apply", "-f", &edited]);
    assert!(
        out.contains("service/web configured") && out.contains("deployment.apps/web configured"),
        "{out}"
    );
    let svc = lab.json(&["get", "svc", "web"]);
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{svc}");
    assert_eq!(
        (ports[0]["port"].as_u64(), ports[0]["targetPort"].as_u64()),
        (Some(80), Some(8081))
    );
    assert_eq!(svc["metadata"]["labels"]["stage"], "two");
    assert!(!svc.to_string().contains('$'));
    let dep = lab.json(&["get", "deploy", "web"]);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(dep["metadata"]["generation"], 2);
    let out = lab.ok(&["apply", "-f", &edited]);
    assert_eq!(out.matches("unchanged").count(), 6, "{out}");

    // LoadBalancer → ClusterIP drops the node ports, like the real server.
    lab.ok(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    let table = lab.ok(&["get", "svc", "web"]);
    let r = row(&table, "web");
    assert_eq!(
        (r[1].as_str(), r[3].as_str(), r[4].as_str()),
        ("ClusterIP", "<none>", "80/TCP")
    );

    // Delete.
    let out = lab.ok(&["delete", "-f", &edited]);
    assert!(out.contains("service \"web\" deleted"), "{out}");
    let out = lab.run_with(&lab.https, &["get", "svc", "web"]);
    assert!(!out.ok && out.stderr.contains("NotFound"), "{}", out.stderr);
    assert!(
        lab.ok(&["get", "clusterroles"]).trim().is_empty()
            || !lab.ok(&["get", "clusterroles"]).contains("ferrolb")
    );
}

#[test]
fn get_watch_receives_changes() {
    let Some(lab) = Lab::start() else { return };
    let manifest = lab.file("m.yaml", MANIFEST);
    lab.ok(&["apply", "-f", &manifest]);
    let mut child: Child = lab
        .command(&lab.https, &["get", "svc", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => continue,
                Err(_) => panic!("kubectl get -w printed no line with {what:?}"),
            }
        }
    };
    let first = next("web");
    assert!(first.contains("<pending>"), "{first}");
    lab.ok(&[
        "patch",
        "svc",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.33"}]}}}"#,
    ]);
    let changed = next("192.0.2.33");
    assert!(
        changed.starts_with("web ") && changed.contains("LoadBalancer"),
        "{changed}"
    );
    lab.ok(&["apply", "-f", &lab.file("s2.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: second\nspec:\n  ports:\n  - port: 53\n    protocol: UDP\n")]);
    let added = next("second");
    assert!(
        added.contains("ClusterIP") && added.contains("53/UDP"),
        "{added}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn describe_shows_events() {
    let Some(lab) = Lab::start() else { return };
    lab.ok(&["apply", "-f", &lab.file("m.yaml", MANIFEST)]);
    let svc = lab.json(&["get", "svc", "web"]);
    let uid = svc["metadata"]["uid"].as_str().unwrap();
    let event = serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.17a1", "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "default", "uid": uid},
        "reason": "IPAllocated", "message": "Assigned IP [\"192.0.2.10\"]", "type": "Normal",
        "source": {"component": "ferrolb-controller"}, "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
    });
    // An event about another Service must not show.
    let mut other = event.clone();
    other["metadata"]["name"] = "other.1".into();
    other["involvedObject"]["name"] = "other".into();
    other["reason"] = "Unrelated".into();
    lab.ok(&["create", "-f", &lab.file("ev.json", &event.to_string())]);
    lab.ok(&["create", "-f", &lab.file("ev2.json", &other.to_string())]);
    // And one through events.k8s.io/v1, as a newer recorder writes it.
    let newer = serde_json::json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.17a2", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:01.000000Z", "reportingController": "ferrolb.io/allocator",
        "reportingInstance": "node-1", "action": "Allocate", "reason": "ClearAssignment", "type": "Warning",
        "note": "cleared", "regarding": {"apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "default", "uid": uid},
    });
    lab.ok(&["create", "-f", &lab.file("ev3.json", &newer.to_string())]);
    let out = lab.ok(&["describe", "svc", "web"]);
    assert!(out.contains("Name:                     web"), "{out}");
    assert!(
        out.contains("Type:                     LoadBalancer"),
        "{out}"
    );
    let events = out
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events in:\n{out}"));
    assert!(
        events.contains("IPAllocated") && events.contains("ferrolb-controller"),
        "{out}"
    );
    assert!(events.contains("Assigned IP [\"192.0.2.10\"]"), "{out}");
    assert!(events.contains("ClearAssignment"), "{out}");
    assert!(!events.contains("Unrelated"), "{out}");
    let table = lab.ok(&["get", "events"]);
    assert_eq!(
        header(&table),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(table.contains("service/web"), "{table}");
}

#[test]
fn nodes_leases_and_endpointslices() {
    let Some(lab) = Lab::start() else { return };
    let objs = r#"
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels: {node-role.kubernetes.io/control-plane: ""}
status:
  conditions:
  - {type: Ready, status: "True"}
  addresses:
  - {type: InternalIP, address: 10.0.0.11}
  nodeInfo: {kubeletVersion: v1.32.4}
---
apiVersion: v1
kind: Node
metadata:
  name: node-2
status:
  conditions:
  - {type: Ready, status: "False"}
  nodeInfo: {kubeletVersion: v1.32.4}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: ferrolb-allocator
  namespace: kube-system
spec:
  holderIdentity: node-1
  leaseDurationSeconds: 15
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- addresses: ["10.244.0.5"]
  conditions: {ready: true}
- addresses: ["10.244.0.6"]
"#;
    lab.ok(&["apply", "-f", &lab.file("objs.yaml", objs)]);
    let nodes = lab.ok(&["get", "nodes"]);
    assert_eq!(
        header(&nodes),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    let r = row(&nodes, "node-1");
    assert_eq!(
        (r[1].as_str(), r[2].as_str(), r[4].as_str()),
        ("Ready", "control-plane", "v1.32.4")
    );
    let r = row(&nodes, "node-2");
    assert_eq!((r[1].as_str(), r[2].as_str()), ("NotReady", "<none>"));
    let wide = lab.ok(&["get", "nodes", "-o", "wide"]);
    assert_eq!(row(&wide, "node-1")[5], "10.0.0.11");
    let leases = lab.ok(&["get", "leases", "-A"]);
    assert_eq!(header(&leases), ["NAMESPACE", "NAME", "HOLDER", "AGE"]);
    assert_eq!(row(&leases, "ferrolb-allocator")[2], "node-1");
    let slices = lab.ok(&["get", "endpointslices"]);
    assert_eq!(
        header(&slices),
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    let r = row(&slices, "web-abc");
    assert_eq!(
        (r[1].as_str(), r[2].as_str(), r[3].as_str()),
        ("IPv4", "8080", "10.244.0.5,10.244.0.6")
    );
    // Node status through the subresource, and a label selector.
    lab.ok(&[
        "patch",
        "node",
        "node-2",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    assert_eq!(row(&lab.ok(&["get", "nodes"]), "node-2")[1], "Ready");
    lab.ok(&["label", "node", "node-2", "zone=a"]);
    let sel = lab.ok(&["get", "nodes", "-l", "zone=a", "-o", "name"]);
    assert_eq!(sel.trim(), "node/node-2");
    let sel = lab.ok(&["get", "nodes", "-l", "zone notin (a)", "-o", "name"]);
    assert_eq!(sel.trim(), "node/node-1");
    // Short names and categories.
    assert!(lab.ok(&["get", "no"]).contains("node-1"));
    lab.ok(&["apply", "-f", &lab.file("m.yaml", MANIFEST)]);
    let all = lab.ok(&["get", "all"]);
    assert!(
        all.contains("service/web") && all.contains("deployment.apps/web"),
        "{all}"
    );
}

#[test]
fn https_tokens_and_plain_http() {
    let Some(lab) = Lab::start() else { return };
    lab.ok(&["apply", "-f", &lab.file("m.yaml", MANIFEST)]);
    assert!(lab.ok(&["get", "svc"]).contains("web"));
    // A wrong token over HTTPS is refused.
    let text = std::fs::read_to_string(&lab.https)
        .unwrap()
        .replace(TOKEN, "wrong-token");
    let bad = lab.dir.path().join("kubeconfig-bad");
    std::fs::write(&bad, text).unwrap();
    let out = lab.run_with(&bad, &["get", "svc"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("Unauthorized"), "{}", out.stderr);
    // No token over HTTPS is refused too.
    let text = std::fs::read_to_string(&lab.https)
        .unwrap()
        .replace(&format!("token: \"{TOKEN}\""), "{}");
    let none = lab.dir.path().join("kubeconfig-none");
    std::fs::write(&none, text.replace("user:\n    {}", "user: {}")).unwrap();
    let out = lab.run_with(&none, &["get", "svc"]);
    assert!(!out.ok, "{}", out.stdout);
    // Plain HTTP (kubectl sends no token there).
    let out = lab.run_with(&lab.http, &["get", "svc", "web"]);
    assert!(out.ok, "{}", out.stderr);
    // Every request went through the log with its verb.
    let log = lab.sim().requests();
    assert!(log
        .iter()
        .any(|r| r.tls && r.verb == "list" && r.resource == "services" && r.status == 200));
    assert!(log.iter().any(|r| r.tls && r.status == 401));
    assert!(log
        .iter()
        .any(|r| !r.tls && r.verb == "get" && r.name == "web"));
    assert!(log.iter().all(|r| !r.user_agent.is_empty()));
}

#[test]
fn typed_create_commands() {
    // kubectl's `create <kind>` subcommands send protobuf bodies.
    let Some(lab) = Lab::start() else { return };
    assert!(lab
        .ok(&["create", "namespace", "team-a"])
        .contains("namespace/team-a created"));
    lab.ok(&[
        "-n",
        "team-a",
        "create",
        "configmap",
        "c1",
        "--from-literal=a=b",
        "--from-literal=c=d",
    ]);
    lab.ok(&[
        "-n",
        "team-a",
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=token=xyz",
    ]);
    lab.ok(&["-n", "team-a", "create", "serviceaccount", "ferrolb"]);
    lab.ok(&[
        "create",
        "clusterrole",
        "r1",
        "--verb=get,list,watch",
        "--resource=services,endpointslices.discovery.k8s.io",
    ]);
    lab.ok(&[
        "create",
        "clusterrolebinding",
        "b1",
        "--clusterrole=r1",
        "--serviceaccount=team-a:ferrolb",
    ]);
    lab.ok(&[
        "-n",
        "team-a",
        "create",
        "role",
        "r2",
        "--verb=get",
        "--resource=leases.coordination.k8s.io",
    ]);
    lab.ok(&[
        "-n",
        "team-a",
        "create",
        "rolebinding",
        "b2",
        "--role=r2",
        "--user=alice",
    ]);
    lab.ok(&[
        "-n",
        "team-a",
        "create",
        "service",
        "loadbalancer",
        "lb1",
        "--tcp=80:8080",
        "--tcp=443",
    ]);
    lab.ok(&[
        "-n",
        "team-a",
        "create",
        "deployment",
        "d1",
        "--image=nginx:1.27",
        "--port=8080",
        "--replicas=3",
    ]);

    let cm = lab.json(&["-n", "team-a", "get", "cm", "c1"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "b", "c": "d"}));
    let secret = lab.json(&["-n", "team-a", "get", "secret", "s1"]);
    assert_eq!(
        (secret["type"].as_str(), secret["data"]["token"].as_str()),
        (Some("Opaque"), Some("eHl6"))
    );
    let role = lab.json(&["get", "clusterrole", "r1"]);
    assert_eq!(role["rules"][1]["apiGroups"][0], "discovery.k8s.io");
    assert_eq!(
        role["rules"][1]["verbs"],
        serde_json::json!(["get", "list", "watch"])
    );
    let binding = lab.json(&["get", "clusterrolebinding", "b1"]);
    assert_eq!(binding["roleRef"]["name"], "r1");
    assert_eq!(
        binding["subjects"][0],
        serde_json::json!({"kind": "ServiceAccount", "name": "ferrolb", "namespace": "team-a"})
    );
    let svc = lab.json(&["-n", "team-a", "get", "svc", "lb1"]);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], 443);
    assert!(svc["spec"]["ports"][1]["nodePort"].as_u64().is_some());
    let dep = lab.json(&["-n", "team-a", "get", "deploy", "d1"]);
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    let table = lab.ok(&["-n", "team-a", "get", "rolebinding"]);
    assert_eq!(row(&table, "b2")[1], "Role/r2");
    // Deleting the namespace deletes what is in it.
    lab.ok(&["delete", "namespace", "team-a"]);
    let out = lab.run_with(&lab.https, &["-n", "team-a", "get", "cm", "c1"]);
    assert!(!out.ok);
}

#[test]
fn cli_runs_in_another_process() {
    if !Path::new(KUBECTL).exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    /// Kills the simulator if the test fails half-way.
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args([
            "lab",
            "apiserver",
            "--listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--token",
            TOKEN,
            "--bookmark-interval",
            "200ms",
            "--write-kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = Reap(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut urls = Vec::new();
    while urls.len() < 2 {
        let line = lines
            .next()
            .expect("the simulator prints its URLs")
            .unwrap();
        urls.push(line.rsplit(' ').next().unwrap().to_string());
    }
    assert!(
        urls[0].starts_with("http://127.0.0.1:") && urls[1].starts_with("https://127.0.0.1:"),
        "{urls:?}"
    );
    let kubectl = |args: &[&str]| {
        Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let out = kubectl(&["get", "namespaces"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("kube-system"),
        "{text}"
    );
    // Faults over HTTP, from this other process.
    let host = urls[0].trim_start_matches("http://").to_string();
    let http = |method: &str, path: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&host).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    };
    assert!(
        http("POST", "/_sim/faults/fail?count=1&code=429&retryAfter=3").starts_with("HTTP/1.1 200")
    );
    let failed = http("GET", "/api/v1/namespaces");
    assert!(
        failed.starts_with("HTTP/1.1 429")
            && failed.to_ascii_lowercase().contains("retry-after: 3"),
        "{failed}"
    );
    assert!(http("GET", "/api/v1/namespaces").starts_with("HTTP/1.1 200"));
    let log = http("GET", "/_sim/requests");
    assert!(
        log.contains("\"verb\":\"list\"") && log.contains("\"resource\":\"namespaces\""),
        "{log}"
    );
    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(code) = child.0.try_wait().unwrap() {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "{code:?}");
}

#[test]
fn service_account_token_recipe() {
    // The token controller fills a service-account-token Secret; a kubeconfig built from it
    // with kubectl alone works against the simulator.
    let Some(lab) = Lab::start() else { return };
    let manifest = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ferrolb\n  namespace: kube-system\n---\n\
        apiVersion: v1\nkind: Secret\nmetadata:\n  name: ferrolb-token\n  namespace: kube-system\n  annotations:\n    kubernetes.io/service-account.name: ferrolb\ntype: kubernetes.io/service-account-token\n";
    lab.ok(&["apply", "-f", &lab.file("sa.yaml", manifest)]);
    let token = lab.ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        "ferrolb-token",
        "-o",
        "jsonpath={.data.token}",
    ]);
    let ca = lab.ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        "ferrolb-token",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let token = String::from_utf8(b64.decode(token.trim()).unwrap()).unwrap();
    assert_eq!(token, TOKEN);
    let ca = b64.decode(ca.trim()).unwrap();
    assert_eq!(ca, lab.sim().ca_pem().as_bytes());
    // Build a kubeconfig with kubectl config, as an operator would.
    let kc = lab.dir.path().join("node-kubeconfig");
    let ca_file = lab.file("ca.crt", lab.sim().ca_pem());
    let server = lab.sim().https_url().unwrap();
    let cfg = |args: &[&str]| {
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .env("HOME", lab.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cfg(&[
        "config",
        "set-cluster",
        "lab",
        &format!("--server={server}"),
        &format!("--certificate-authority={ca_file}"),
        "--embed-certs=true",
    ]);
    cfg(&[
        "config",
        "set-credentials",
        "ferrolb",
        &format!("--token={token}"),
    ]);
    cfg(&[
        "config",
        "set-context",
        "ferrolb",
        "--cluster=lab",
        "--user=ferrolb",
    ]);
    cfg(&["config", "use-context", "ferrolb"]);
    let out = lab.run_with(&kc, &["get", "namespaces"]);
    assert!(
        out.ok && out.stdout.contains("kube-system"),
        "{}",
        out.stderr
    );
}
