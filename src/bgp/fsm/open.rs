//! Checking the peer's OPEN (RFC 4271 §6.2, RFC 6286) and negotiating the timers.

use std::cmp::Ordering;
use std::time::Duration;

use super::notification::open_error as sub;
use super::{Direction, FsmConfig, Negotiated, Notification, PeerOpen};

/// The only BGP version we speak.
pub const BGP_VERSION: u8 = 4;

/// Accepts the peer's OPEN and returns what is agreed, or the NOTIFICATION refusing it.
/// Checked in RFC 4271's order: version, AS, hold time, identifier.
pub fn accept_open(cfg: &FsmConfig, open: &PeerOpen) -> Result<Negotiated, Notification> {
    if open.version != BGP_VERSION {
        // Data: the largest version we support, as 2 octets (RFC 4271 §6.2).
        return Err(Notification::open_error(sub::UNSUPPORTED_VERSION)
            .with_data(u16::from(BGP_VERSION).to_be_bytes().to_vec()));
    }
    if open.asn != cfg.peer_asn {
        return Err(Notification::open_error(sub::BAD_PEER_AS));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(Notification::open_error(sub::UNACCEPTABLE_HOLD_TIME));
    }
    // RFC 6286 §2.2: zero is never valid; our own identifier only inside one AS (two eBGP
    // speakers may share one, collisions are then broken by AS number).
    if open.router_id.is_unspecified() || (open.router_id == cfg.router_id && cfg.is_ibgp()) {
        return Err(Notification::open_error(sub::BAD_BGP_IDENTIFIER));
    }
    let hold = cfg.hold_time.min(open.hold_time);
    let hold_time = Duration::from_secs(u64::from(hold));
    let keepalive_interval = (hold > 0).then(|| {
        let third = hold_time / 3;
        cfg.keepalive_time.map_or(third, |k| k.min(third))
    });
    Ok(Negotiated {
        hold_time,
        keepalive_interval,
        peer_asn: open.asn,
        peer_router_id: open.router_id,
    })
}

/// Which connection survives a collision (RFC 4271 §6.8): the one opened by the speaker
/// with the higher BGP identifier; with equal identifiers (eBGP only), by the one with the
/// higher AS (RFC 6286 §2.3).
pub fn collision_winner(cfg: &FsmConfig, peer: &Negotiated) -> Direction {
    let ours = (u32::from(cfg.router_id), cfg.local_asn);
    let theirs = (u32::from(peer.peer_router_id), peer.peer_asn);
    match ours.cmp(&theirs) {
        Ordering::Greater => Direction::Outbound,
        // Equal cannot happen: an equal identifier is refused inside one AS, and the ASes
        // differ otherwise. Keeping the peer's connection is as good an answer as any.
        Ordering::Less | Ordering::Equal => Direction::Inbound,
    }
}
