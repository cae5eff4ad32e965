//! `ferrolb lab fail NODE` / `heal NODE`: pulls a node's cable (its bridge-side veth in the LAN
//! namespace goes down) and plugs it back in. The node's daemon keeps running, as on a real
//! machine whose switch port died.

use super::error::LabError;
use super::state::LabState;
use super::topology::{ip, LAN_NS};

/// Sets `node`'s LAN cable down (`up == false`) or up; returns what was done.
pub fn cable(node: &str, up: bool) -> Result<String, LabError> {
    let state = LabState::load()?.ok_or(LabError::NotRunning)?;
    let Some((_, port)) = state.nodes.iter().find(|(name, _)| name == node) else {
        return Err(LabError::UnknownNode {
            name: node.to_string(),
            known: state
                .nodes
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let word = if up { "up" } else { "down" };
    ip(&["-n", LAN_NS, "link", "set", port, word])?;
    Ok(if up {
        format!("{node}: cable plugged back in ({LAN_NS}/{port} up)")
    } else {
        format!("{node}: cable pulled ({LAN_NS}/{port} down); its addresses move to another node")
    })
}
