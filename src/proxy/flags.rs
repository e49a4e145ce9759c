//! `detcd grpc-proxy start`: etcd 3.4's grpc-proxy flags, where they apply to detcd.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;

/// `detcd grpc-proxy ...`, as `etcd grpc-proxy ...`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "detcd grpc-proxy",
    about = "grpc-proxy related command",
    args_override_self = true
)]
pub struct GrpcProxyCommand {
    #[command(subcommand)]
    pub command: GrpcProxySubcommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum GrpcProxySubcommand {
    /// Start the grpc proxy.
    Start(GrpcProxyFlags),
}

#[derive(Parser, Debug, Clone)]
pub struct GrpcProxyFlags {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:23790")]
    pub listen_addr: String,
    /// Comma separated etcd cluster endpoints.
    #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Listen for /metrics requests on an additional interface.
    #[arg(long, default_value = "")]
    pub metrics_addr: String,
    /// IP:port to advertise to clients (logged at start; etcd registers it only under
    /// --resolver-prefix, which detcd does not have).
    #[arg(long, default_value = "127.0.0.1:23790")]
    pub advertise_client_url: String,
    /// String to prefix to all keys for namespacing requests.
    #[arg(long, default_value = "")]
    pub namespace: String,
    /// Enable debug-level logging for grpc-proxy.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub debug: bool,
}

/// What the proxy runs with: from `grpc-proxy start` flags, or from a member's `--proxy=on`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The cluster's client URLs (`http://host:port`), tried in order on failure.
    pub endpoints: Vec<String>,
    /// Where clients reach the proxy: gRPC and HTTP on each.
    pub listen_addrs: Vec<SocketAddr>,
    /// Extra HTTP-only listeners for `/metrics`, `/health`, `/version`.
    pub metrics_addrs: Vec<SocketAddr>,
    pub advertise_client_url: String,
    /// Prefix added to every key sent to the cluster and removed from every key sent back.
    pub namespace: Vec<u8>,
    /// `--proxy=readonly`: refuse requests that would change the cluster.
    pub read_only: bool,
    pub log_level: String,
}

impl GrpcProxyFlags {
    pub fn into_config(self) -> Result<ProxyConfig, ConfigError> {
        let listen_addrs = vec![parse_host_port("listen-addr", &self.listen_addr)?];
        let metrics_addrs = match self.metrics_addr.as_str() {
            "" => Vec::new(),
            addr => vec![parse_host_port("metrics-addr", addr)?],
        };
        let endpoints = self
            .endpoints
            .iter()
            .filter(|endpoint| !endpoint.is_empty())
            .map(|endpoint| endpoint_url(endpoint))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(ConfigError("no endpoints found".into()));
        }
        Ok(ProxyConfig {
            endpoints,
            listen_addrs,
            metrics_addrs,
            advertise_client_url: self.advertise_client_url,
            namespace: self.namespace.into_bytes(),
            read_only: false,
            log_level: if self.debug { "debug" } else { "info" }.into(),
        })
    }
}

/// An endpoint as clientv3 takes it: `host:port`, or a URL with `http://`.
fn endpoint_url(endpoint: &str) -> Result<String, ConfigError> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    match url.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => Ok(url.trim_end_matches('/').to_string()),
        Some(("https", _)) => Err(ConfigError(format!(
            "invalid endpoint {endpoint:?}: the grpc-proxy talks to members over http://"
        ))),
        _ => Err(ConfigError(format!(
            "invalid endpoint {endpoint:?}: expected host:port or http://host:port"
        ))),
    }
}

/// `--listen-addr` is `host:port` (no scheme); `localhost` binds loopback.
fn parse_host_port(flag: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let value = value.strip_prefix("http://").unwrap_or(value);
    let value = match value.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => value.to_string(),
    };
    value.parse().map_err(|_| {
        ConfigError(format!(
            "invalid value {value:?} for flag --{flag}: expected IP:port"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ProxyConfig, ConfigError> {
        let command = GrpcProxyCommand::try_parse_from(
            ["detcd grpc-proxy", "start"].iter().chain(args.iter()),
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        let GrpcProxySubcommand::Start(flags) = command.command;
        flags.into_config()
    }

    #[test]
    fn defaults_are_etcds() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(config.listen_addrs, ["127.0.0.1:23790".parse().unwrap()]);
        assert!(config.metrics_addrs.is_empty());
        assert!(config.namespace.is_empty());
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn endpoints_namespace_and_debug() {
        let config = parse(&[
            "--endpoints=127.0.0.1:1,http://127.0.0.1:2/",
            "--listen-addr=localhost:9",
            "--namespace=ns/",
            "--debug",
        ])
        .unwrap();
        assert_eq!(
            config.endpoints,
            ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(config.listen_addrs, ["127.0.0.1:9".parse().unwrap()]);
        assert_eq!(config.namespace, b"ns/");
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let error = parse(&["--listen-addr=nowhere"]).unwrap_err();
        assert!(error.0.contains("--listen-addr"), "{error}");
        let error = parse(&["--endpoints=https://127.0.0.1:1"]).unwrap_err();
        assert!(error.0.contains("http://"), "{error}");
        assert!(parse(&["--endpoints="]).is_err());
    }
}
