//! What `lab up` made, kept in `/run/ferrolb-lab/state.json` so `lab down` removes exactly
//! that: the namespaces (their links go with them) and the processes, by PID.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::LabError;

/// Where the lab keeps its state, configs, kubeconfig and logs.
pub const RUN_DIR: &str = "/run/ferrolb-lab";

/// The state file inside [`RUN_DIR`].
pub fn state_path() -> PathBuf {
    Path::new(RUN_DIR).join("state.json")
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabProcess {
    /// What it is (`apiserver`, `ferrolb node1`, `responder node1`, `zebra`, `bgpd`).
    pub role: String,
    /// The namespace it runs in.
    pub namespace: String,
    /// Its PID.
    pub pid: u32,
    /// The program it runs, checked against `/proc/PID/cmdline` before it is signalled, so a
    /// reused PID is never killed.
    pub program: String,
    /// Its log file.
    pub log: PathBuf,
}

/// Everything a running lab is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The namespaces made, in creation order.
    pub namespaces: Vec<String>,
    /// The links made (`namespace/name`), in creation order; they go with the namespaces.
    pub links: Vec<String>,
    /// The processes started.
    pub processes: Vec<LabProcess>,
    /// The node names (`node1` …) and their bridge-side ports in the LAN namespace.
    pub nodes: Vec<(String, String)>,
    /// Whether FRR runs in the router namespace (the BGP part).
    pub bgp: bool,
}

impl LabState {
    /// Reads the state file; `None` when there is none.
    pub fn load() -> Result<Option<LabState>, LabError> {
        let path = state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LabError::File { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::BadState {
                path,
                detail: e.to_string(),
            })
    }

    /// Writes the state file (atomically: a crash leaves the old one or the new one).
    pub fn save(&self) -> Result<(), LabError> {
        let path = state_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::BadState {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(LabError::file(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(LabError::file(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let s = LabState {
            namespaces: vec!["ferrolb-lan".into()],
            links: vec!["ferrolb-lan/br0".into()],
            processes: vec![LabProcess {
                role: "apiserver".into(),
                namespace: "ferrolb-api".into(),
                pid: 42,
                program: "/usr/bin/ferrolb".into(),
                log: "/run/ferrolb-lab/apiserver.log".into(),
            }],
            nodes: vec![("node1".into(), "vnode1".into())],
            bgp: false,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<LabState>(&text).unwrap(), s);
    }
}
