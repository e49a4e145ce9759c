//! `detcd grpc-proxy start`: etcd 3.4's grpc-proxy flags, where they apply to detcd.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{parse_listen_url, ConfigError, ListenUrl};
use crate::tls::settings::{TlsInfo, TlsPolicy, CLIENT_FLAGS};
use crate::tls::UpstreamTls;

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
    /// Data directory for proxy-generated files (`--auto-tls` certificates).
    #[arg(long, default_value = "default.proxy")]
    pub data_dir: PathBuf,

    /// Identify secure connections with etcd servers using this TLS certificate file.
    #[arg(long, default_value = "")]
    pub cert: String,
    /// Identify secure connections with etcd servers using this TLS key file.
    #[arg(long, default_value = "")]
    pub key: String,
    /// Verify certificates of TLS-enabled secure etcd servers using this CA bundle.
    #[arg(long, default_value = "")]
    pub cacert: String,
    /// Skip authentication of etcd server TLS certificates.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub insecure_skip_tls_verify: bool,

    /// Identify secure connections to the proxy using this TLS certificate file.
    #[arg(long, default_value = "")]
    pub cert_file: String,
    /// Identify secure connections to the proxy using this TLS key file.
    #[arg(long, default_value = "")]
    pub key_file: String,
    /// Verify certificates of TLS-enabled secure proxy using this CA bundle (clients must then
    /// show a certificate it signed).
    #[arg(long, default_value = "")]
    pub trusted_ca_file: String,
    /// Proxy TLS using generated certificates.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub auto_tls: bool,
}

/// What the proxy runs with: from `grpc-proxy start` flags, or from a member's `--proxy=on`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The cluster's client URLs (`http://host:port`), tried in order on failure.
    pub endpoints: Vec<String>,
    /// Where clients reach the proxy: gRPC and HTTP on each (over TLS when `secure`).
    pub listen_addrs: Vec<ListenUrl>,
    /// Extra HTTP-only listeners for `/metrics`, `/health`, `/version`.
    pub metrics_addrs: Vec<ListenUrl>,
    pub advertise_client_url: String,
    /// Prefix added to every key sent to the cluster and removed from every key sent back.
    pub namespace: Vec<u8>,
    /// `--proxy=readonly`: refuse requests that would change the cluster.
    pub read_only: bool,
    pub log_level: String,
    /// The certificate the proxy serves `https` with, and the CA its clients' certificates must
    /// be signed by.
    pub serve_tls: TlsInfo,
    /// How the proxy dials the cluster's `https://` endpoints.
    pub upstream_tls: UpstreamTls,
    /// Where `--auto-tls` certificates are written.
    pub fixtures_dir: PathBuf,
    /// Cipher suites and TLS versions (a member's `--cipher-suites`, `--tls-min-version` in
    /// proxy mode; rustls's defaults for the grpc-proxy, which has no such flags).
    pub tls_policy: TlsPolicy,
}

impl GrpcProxyFlags {
    pub fn into_config(self) -> Result<ProxyConfig, ConfigError> {
        let path = |text: &str| (!text.is_empty()).then(|| PathBuf::from(text));
        // etcd's grpc-proxy has no --client-cert-auth: a trusted CA file turns it on.
        let serve_tls = TlsInfo::new(
            &CLIENT_FLAGS,
            &self.cert_file,
            &self.key_file,
            &self.trusted_ca_file,
            !self.trusted_ca_file.is_empty(),
            self.auto_tls,
        )
        .map_err(ConfigError)?;
        if serve_tls.trusted_ca_file.is_some() && !serve_tls.can_serve() {
            return Err(ConfigError(
                "--trusted-ca-file is given without --cert-file and --key-file".into(),
            ));
        }
        let client_cert = match (path(&self.cert), path(&self.key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError("--cert is given without --key".into())),
            (None, Some(_)) => return Err(ConfigError("--key is given without --cert".into())),
        };
        let upstream_tls = UpstreamTls {
            client_cert,
            trusted_ca_file: path(&self.cacert),
            insecure_skip_verify: self.insecure_skip_tls_verify,
        };
        let secure = serve_tls.can_serve();
        let listen_addrs = vec![listen_url("listen-addr", &self.listen_addr, secure)?];
        let metrics_addrs = match self.metrics_addr.as_str() {
            "" => Vec::new(),
            addr => {
                let secure = addr.starts_with("https://");
                if secure && !serve_tls.can_serve() {
                    return Err(ConfigError(format!(
                        "--metrics-addr={addr} is https, but no --cert-file/--key-file (or --auto-tls) is given"
                    )));
                }
                vec![listen_url("metrics-addr", addr, secure)?]
            }
        };
        let default_scheme = if upstream_tls.is_set() {
            "https"
        } else {
            "http"
        };
        let endpoints = self
            .endpoints
            .iter()
            .filter(|endpoint| !endpoint.is_empty())
            .map(|endpoint| endpoint_url(endpoint, default_scheme))
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
            serve_tls,
            upstream_tls,
            fixtures_dir: self.data_dir.join("fixtures").join("proxy"),
            tls_policy: TlsPolicy::default(),
        })
    }
}

/// An endpoint as clientv3 takes it: `host:port` (dialed over TLS when TLS flags are given), or
/// a URL with `http://` or `https://`.
fn endpoint_url(endpoint: &str, default_scheme: &str) -> Result<String, ConfigError> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("{default_scheme}://{endpoint}")
    };
    match url.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(ConfigError(format!(
            "invalid endpoint {endpoint:?}: expected host:port, http://host:port or https://host:port"
        ))),
    }
}

/// A listener from `host:port` (a scheme is allowed and dropped: `secure` decides), parsed as
/// a member's listen URL is.
fn listen_url(flag: &str, value: &str, secure: bool) -> Result<ListenUrl, ConfigError> {
    let bare = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or(value);
    let scheme = if secure { "https" } else { "http" };
    parse_listen_url(flag, &format!("{scheme}://{bare}"))
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
        assert_eq!(addrs(&config.listen_addrs), ["127.0.0.1:23790"]);
        assert!(!config.listen_addrs[0].secure);
        assert!(config.metrics_addrs.is_empty());
        assert_eq!(config.serve_tls, TlsInfo::default());
        assert_eq!(config.upstream_tls, UpstreamTls::default());
        assert_eq!(
            config.fixtures_dir,
            PathBuf::from("default.proxy/fixtures/proxy")
        );
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
        assert_eq!(addrs(&config.listen_addrs), ["127.0.0.1:9"]);
        assert_eq!(config.listen_addrs[0].host, "localhost");
        assert_eq!(config.namespace, b"ns/");
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let error = parse(&["--listen-addr=nowhere"]).unwrap_err();
        assert!(error.0.contains("--listen-addr"), "{error}");
        let error = parse(&["--endpoints=ftp://127.0.0.1:1"]).unwrap_err();
        assert!(error.0.contains("https://host:port"), "{error}");
        assert!(parse(&["--endpoints="]).is_err());
    }

    fn addrs(urls: &[ListenUrl]) -> Vec<String> {
        urls.iter().map(|url| url.addr.to_string()).collect()
    }

    #[test]
    fn tls_flags_are_etcds() {
        let config = parse(&[
            "--endpoints=127.0.0.1:1,http://127.0.0.1:2",
            "--cacert=ca.pem",
            "--cert=c.pem",
            "--key=k.pem",
            "--cert-file=s.pem",
            "--key-file=sk.pem",
            "--trusted-ca-file=clients.pem",
            "--metrics-addr=https://127.0.0.1:3",
            "--data-dir=/p",
        ])
        .unwrap();
        // TLS flags make bare endpoints https (clientv3 with a TLS config); URLs keep theirs.
        assert_eq!(
            config.endpoints,
            ["https://127.0.0.1:1", "http://127.0.0.1:2"]
        );
        assert_eq!(config.upstream_tls.trusted_ca_file, Some("ca.pem".into()));
        assert_eq!(
            config.upstream_tls.client_cert,
            Some(("c.pem".into(), "k.pem".into()))
        );
        assert!(!config.upstream_tls.insecure_skip_verify);
        assert_eq!(config.serve_tls.cert_file, Some("s.pem".into()));
        // A trusted CA means client certificates are required (etcd's TLSInfo.ServerConfig).
        assert!(config.serve_tls.client_cert_auth);
        assert!(config.listen_addrs[0].secure && config.metrics_addrs[0].secure);
        assert_eq!(config.fixtures_dir, PathBuf::from("/p/fixtures/proxy"));

        let auto = parse(&["--auto-tls", "--insecure-skip-tls-verify"]).unwrap();
        assert!(auto.listen_addrs[0].secure && auto.serve_tls.auto_tls);
        assert!(auto.upstream_tls.insecure_skip_verify);
        assert_eq!(auto.endpoints, ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        let error = parse(&["--cert=c.pem"]).unwrap_err();
        assert_eq!(error.0, "--cert is given without --key");
        let error = parse(&["--key-file=k.pem"]).unwrap_err();
        assert_eq!(error.0, "--key-file is given without --cert-file");
        let error = parse(&["--trusted-ca-file=ca.pem"]).unwrap_err();
        assert!(error.0.contains("without --cert-file"), "{error}");
        let error = parse(&["--metrics-addr=https://127.0.0.1:3"]).unwrap_err();
        assert!(error.0.contains("--metrics-addr"), "{error}");
    }
}
