//! `ferrolb status` output: the summary and aligned tables (pure; the JSON form is serde).

use std::time::Duration;

use super::{BgpSessionRow, DaemonStatus, MemberRow, ServiceRow};

/// What an empty cell shows.
const NONE: &str = "-";

/// `ferrolb status`: the status line and one count line per table.
pub fn summary(status: &DaemonStatus) -> String {
    let announced = status.services.iter().filter(|s| s.announced()).count();
    let alive = status.members.iter().filter(|m| m.state == "alive").count();
    let established = status
        .bgp_sessions
        .iter()
        .filter(|s| s.state == "established")
        .count();
    format!(
        "Status:        {}\n\
         Services:      {} ({announced} announced, {} not announced)\n\
         Members:       {} ({alive} alive)\n\
         BGP sessions:  {} ({established} established)\n",
        or_none(&status.summary),
        status.services.len(),
        status.services.len() - announced,
        status.members.len(),
        status.bgp_sessions.len(),
    )
}

/// `ferrolb status services`.
pub fn services(rows: &[ServiceRow]) -> String {
    table(
        &["SERVICE", "ADDRESS", "POOL", "MODE", "NODES", "REASON"],
        rows.iter().map(|r| {
            vec![
                r.service.clone(),
                or_none(&r.address).to_owned(),
                or_none(&r.pool).to_owned(),
                or_none(&r.mode).to_owned(),
                or_none(&r.nodes.join(",")).to_owned(),
                or_none(&r.reason).to_owned(),
            ]
        }),
    )
}

/// `ferrolb status members`.
pub fn members(rows: &[MemberRow]) -> String {
    table(
        &["NAME", "ADDRESS", "STATE"],
        rows.iter()
            .map(|r| vec![r.name.clone(), r.address.clone(), r.state.clone()]),
    )
}

/// `ferrolb status bgp`.
pub fn bgp_sessions(rows: &[BgpSessionRow]) -> String {
    table(
        &["PEER", "STATE", "UPTIME", "PREFIXES", "LAST ERROR"],
        rows.iter().map(|r| {
            let uptime = if r.uptime_seconds == 0 {
                NONE.to_owned()
            } else {
                humantime::format_duration(Duration::from_secs(r.uptime_seconds)).to_string()
            };
            vec![
                r.peer.clone(),
                r.state.clone(),
                uptime,
                r.prefixes_sent.to_string(),
                or_none(&r.last_error).to_owned(),
            ]
        }),
    )
}

fn or_none(cell: &str) -> &str {
    if cell.is_empty() {
        NONE
    } else {
        cell
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded, so lines carry no
/// trailing blanks.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0; headers.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let last = row.len().saturating_sub(1);
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_table_aligns_columns_and_marks_empty_cells() {
        let rows = [
            ServiceRow {
                service: "default/web".into(),
                address: "192.0.2.10".into(),
                pool: "public".into(),
                mode: "l2".into(),
                nodes: vec!["worker-1".into()],
                reason: String::new(),
            },
            ServiceRow {
                service: "shop/api".into(),
                address: String::new(),
                pool: String::new(),
                mode: "bgp".into(),
                nodes: vec![],
                reason: "pool exhausted".into(),
            },
        ];
        assert_eq!(
            services(&rows),
            "SERVICE      ADDRESS     POOL    MODE  NODES     REASON\n\
             default/web  192.0.2.10  public  l2    worker-1  -\n\
             shop/api     -           -       bgp   -         pool exhausted\n"
        );
    }

    #[test]
    fn bgp_table_shows_uptime_only_when_established() {
        let rows = [
            BgpSessionRow {
                peer: "192.0.2.1".into(),
                state: "established".into(),
                uptime_seconds: 3723,
                prefixes_sent: 4,
                last_error: String::new(),
            },
            BgpSessionRow {
                peer: "192.0.2.2".into(),
                state: "active".into(),
                uptime_seconds: 0,
                prefixes_sent: 0,
                last_error: "connection refused".into(),
            },
        ];
        assert_eq!(
            bgp_sessions(&rows),
            "PEER       STATE        UPTIME    PREFIXES  LAST ERROR\n\
             192.0.2.1  established  1h 2m 3s  4         -\n\
             192.0.2.2  active       -         0         connection refused\n"
        );
    }

    #[test]
    fn summary_counts_announced_alive_and_established() {
        let status = DaemonStatus {
            summary: "allocator; 2 services; 1/2 members; 0/0 BGP sessions up".into(),
            services: vec![
                ServiceRow::default(),
                ServiceRow {
                    reason: "no healthy endpoints".into(),
                    ..ServiceRow::default()
                },
            ],
            members: vec![
                MemberRow {
                    state: "alive".into(),
                    ..MemberRow::default()
                },
                MemberRow {
                    state: "down".into(),
                    ..MemberRow::default()
                },
            ],
            bgp_sessions: vec![],
        };
        assert_eq!(
            summary(&status),
            "Status:        allocator; 2 services; 1/2 members; 0/0 BGP sessions up\n\
             Services:      2 (1 announced, 1 not announced)\n\
             Members:       2 (1 alive)\n\
             BGP sessions:  0 (0 established)\n"
        );
    }
}
