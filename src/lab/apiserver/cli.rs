//! `ferrolb lab apiserver`: runs the simulator until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{ApiServer, ApiServerConfig, ServiceRanges};

/// Arguments of `ferrolb lab apiserver`.
#[derive(Debug, Clone, Args)]
pub struct ApiserverArgs {
    /// Plain HTTP listen address (repeatable), e.g. 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// HTTPS listen address (repeatable), e.g. 127.0.0.1:6443. Default when no address is
    /// given at all: 127.0.0.1:6443.
    #[arg(long = "https-listen", value_name = "ADDR")]
    pub https_listen: Vec<SocketAddr>,
    /// The bearer token clients must present (none: anyone may call).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FERROLB_LAB_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Read the bearer token from this file instead.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Write a kubeconfig (server URL, CA, token) to this path once listening.
    #[arg(long, value_name = "PATH")]
    pub write_kubeconfig: Option<PathBuf>,
    /// Write the CA certificate (PEM) to this path once listening.
    #[arg(long, value_name = "PATH")]
    pub write_ca: Option<PathBuf>,
    /// How often watches asking for bookmarks get one ("60s", "500ms").
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub bookmark_interval: Duration,
    /// How many changes are kept for resuming watches (older versions get 410 Gone).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub history: usize,
    /// Refuse plain HTTP requests without the token too.
    #[arg(long)]
    pub http_requires_token: bool,
    /// More DNS names for the serving certificate (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    pub extra_sans: Vec<String>,
    /// Service cluster IP ranges, IPv4 and/or IPv6, comma-separated (as kube-apiserver's flag).
    #[arg(
        long,
        value_name = "CIDRS",
        default_value = "10.96.0.0/16,fd00:10:96::/112"
    )]
    pub service_cluster_ip_range: String,
    /// The node port range, inclusive (as kube-apiserver's flag).
    #[arg(long, value_name = "LOW-HIGH", default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// Play the endpoint controller: every Service with a selector gets an EndpointSlice with
    /// a ready endpoint on each Node (its InternalIP), standing in for pods.
    #[arg(long)]
    pub lab_endpoints: bool,
}

/// Parses `--service-cluster-ip-range` and `--service-node-port-range`.
pub fn parse_ranges(cidrs: &str, ports: &str) -> Result<ServiceRanges, String> {
    let mut ranges = ServiceRanges::default();
    for cidr in cidrs.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match cidr.parse::<ipnet::IpNet>() {
            Ok(ipnet::IpNet::V4(n)) if n.prefix_len() <= 30 => ranges.v4 = n.trunc(),
            Ok(ipnet::IpNet::V6(n)) if n.prefix_len() <= 126 => ranges.v6 = n.trunc(),
            _ => {
                return Err(format!(
                    "--service-cluster-ip-range: {cidr:?} is not a CIDR of 4 addresses or more"
                ))
            }
        }
    }
    let (lo, hi) = ports
        .split_once('-')
        .and_then(|(l, h)| Some((l.trim().parse::<u16>().ok()?, h.trim().parse::<u16>().ok()?)))
        .filter(|(l, h)| l <= h && *l > 0)
        .ok_or_else(|| format!("--service-node-port-range: {ports:?} is not LOW-HIGH"))?;
    ranges.node_ports = (lo, hi);
    Ok(ranges)
}

/// Runs the simulator in the foreground; exit code 0 after SIGINT/SIGTERM.
pub fn run_cli(args: ApiserverArgs) -> ExitCode {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) => {
                eprintln!(
                    "ferrolb: cannot read the token file {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        },
        (None, None) => None,
    };
    let service_ranges = match parse_ranges(
        &args.service_cluster_ip_range,
        &args.service_node_port_range,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrolb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut https = args.https_listen.clone();
    if https.is_empty() && args.listen.is_empty() {
        https.push(SocketAddr::from(([127, 0, 0, 1], 6443)));
    }
    let config = ApiServerConfig {
        http: args.listen.clone(),
        https,
        token,
        http_requires_token: args.http_requires_token,
        bookmark_interval: args.bookmark_interval,
        history: args.history,
        extra_sans: args.extra_sans.clone(),
        service_ranges,
        lab_endpoints: args.lab_endpoints,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrolb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let sim = match ApiServer::start(config).await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("ferrolb: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(path) = &args.write_kubeconfig {
            if let Err(e) = sim.write_kubeconfig(path, sim.https_url().is_some()) {
                eprintln!(
                    "ferrolb: cannot write the kubeconfig {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
        if let Some(path) = &args.write_ca {
            if let Err(e) = sim.write_ca(path) {
                eprintln!("ferrolb: cannot write the CA {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        for url in sim.http_url().into_iter().chain(sim.https_url()) {
            println!("ferrolb lab apiserver: serving {url}");
        }
        wait_for_signal().await;
        sim.shutdown();
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        let r = parse_ranges("10.0.0.0/24,fd00::/120", "31000-31010").unwrap();
        assert_eq!(r.v4.to_string(), "10.0.0.0/24");
        assert_eq!(r.v6.to_string(), "fd00::/120");
        assert_eq!(r.node_ports, (31000, 31010));
        assert!(parse_ranges("10.0.0.0/31", "1-2").is_err());
        assert!(parse_ranges("nope", "1-2").is_err());
        assert!(parse_ranges("10.0.0.0/8", "5-1").is_err());
        assert!(parse_ranges("", "30000-32767").is_ok());
    }
}
