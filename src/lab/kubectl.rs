//! `ferrolb lab kubectl ARGS…`: kubectl inside the lab's API namespace, where the simulator
//! listens, with the lab's kubeconfig; the host's network is never used.

use std::io::Write;
use std::process::{Command, Stdio};

use super::error::LabError;
use super::state::{LabState, RUN_DIR};
use super::topology::{require, API_NS, KUBECTL};

/// The lab's kubeconfig.
pub fn kubeconfig_path() -> std::path::PathBuf {
    std::path::Path::new(RUN_DIR).join("kubeconfig")
}

fn command(args: &[String]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", API_NS, KUBECTL])
        .args(args)
        .env("KUBECONFIG", kubeconfig_path());
    cmd
}

/// Runs kubectl with the caller's stdin, stdout and stderr; returns its exit code.
pub fn kubectl(args: &[String]) -> Result<i32, LabError> {
    if LabState::load()?.is_none() {
        return Err(LabError::NotRunning);
    }
    require(KUBECTL, "kubectl")?;
    let status = command(args).status().map_err(|e| LabError::Command {
        command: format!("kubectl {}", args.join(" ")),
        detail: e.to_string(),
    })?;
    // Killed by a signal: the shell convention.
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

/// Runs kubectl with `stdin` (if any) and returns its stdout; an error carries its stderr.
pub fn kubectl_output(args: &[&str], stdin: Option<&str>) -> Result<String, LabError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let what = format!("kubectl {}", args.join(" "));
    let fail = |detail: String| LabError::Command {
        command: what.clone(),
        detail,
    };
    let mut child = command(&args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The LoadBalancer Services as `(namespace/name, addresses)`, via the simulator.
pub fn load_balancers() -> Result<Vec<(String, Vec<String>)>, LabError> {
    let text = kubectl_output(&["get", "services", "--all-namespaces", "-o", "json"], None)?;
    let list: serde_json::Value = serde_json::from_str(&text).map_err(|e| LabError::Command {
        command: "kubectl get services".into(),
        detail: format!("unreadable answer: {e}"),
    })?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["spec"]["type"] == "LoadBalancer")
        .map(|s| {
            let name = format!(
                "{}/{}",
                s["metadata"]["namespace"].as_str().unwrap_or(""),
                s["metadata"]["name"].as_str().unwrap_or("")
            );
            let ips = s["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().map(str::to_string))
                .collect();
            (name, ips)
        })
        .collect())
}
