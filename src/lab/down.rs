//! `ferrolb lab down`: stops every process the state file lists (and only those, checked
//! against `/proc/PID/cmdline`), deletes the namespaces the lab made (their links go with
//! them) and removes `/run/ferrolb-lab`. Idempotent: with no lab, it says so and succeeds.

use std::time::{Duration, Instant};

use super::error::LabError;
use super::state::{LabState, RUN_DIR};
use super::topology::{alive, ip, is_root, lab_namespaces, signal};

/// Tears down the running lab; the message says what was removed.
pub fn down() -> Result<String, LabError> {
    if !is_root() {
        return Err(LabError::NotRoot("down"));
    }
    match LabState::load()? {
        None => {
            let strays = lab_namespaces()?;
            // A run directory without state: `lab up` stopped before recording anything.
            let leftover = std::path::Path::new(RUN_DIR).exists();
            if leftover {
                std::fs::remove_dir_all(RUN_DIR)
                    .map_err(LabError::file(std::path::Path::new(RUN_DIR)))?;
            }
            if strays.is_empty() {
                Ok(if leftover {
                    format!("no lab is running: removed the empty {RUN_DIR}")
                } else {
                    "no lab is running: nothing to do".into()
                })
            } else {
                // Not recorded by a lab: perhaps someone else's; never deleted unasked.
                Ok(format!(
                    "no lab is running, but namespaces named like the lab's exist: {} \
                     (not made by a recorded lab; remove them with `ip netns delete NAME`)",
                    strays.join(", ")
                ))
            }
        }
        Some(state) => {
            teardown(&state)?;
            Ok(format!(
                "lab down: stopped {} processes, deleted {} namespaces, removed {RUN_DIR}",
                state.processes.len(),
                state.namespaces.len()
            ))
        }
    }
}

/// Removes what `state` lists, then the run directory. Also used when `lab up` fails half way.
pub fn teardown(state: &LabState) -> Result<(), LabError> {
    stop_processes(state);
    let existing = lab_namespaces()?;
    for ns in state.namespaces.iter().rev() {
        if existing.contains(ns) {
            ip(&["netns", "delete", ns])?;
        }
    }
    match std::fs::remove_dir_all(RUN_DIR) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::File {
            path: RUN_DIR.into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// SIGTERM to every listed process still running the program it was started with; SIGKILL
/// to those still there after 5 s.
fn stop_processes(state: &LabState) {
    let signal_all = |sig: &str| {
        let mut left = 0;
        for p in state.processes.iter().filter(|p| alive(p)) {
            left += 1;
            signal(p, sig);
        }
        left
    };
    if signal_all("TERM") == 0 {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !state.processes.iter().any(alive) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = signal_all("KILL");
    tracing::warn!(killed, "lab processes ignored SIGTERM for 5 s: killed");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && state.processes.iter().any(alive) {
        std::thread::sleep(Duration::from_millis(20));
    }
}
