//! The node's configuration: etcd's flag names, their `ETCD_*` environment twins, and validation.
//!
//! Parsing never touches the data dir: a bad flag must leave the disk exactly as it was, so every
//! check that can be done on the flags alone happens here, before `embed::start` creates anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::tls::{self, Dialers, TlsInfo, TlsPolicy};

/// The etcd API version detcd speaks; reported by `/version` and `Maintenance.Status`, and read by
/// clients that gate features on the server version.
pub const ETCD_API_VERSION: &str = "3.4.0";

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const MAX_REQUEST_BYTES_DEFAULT: usize = 1536 * 1024;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS_DEFAULT: usize = 128;

/// detcd's default bound on proposals waiting for their apply (`--experimental-max-pending-proposals`):
/// as many as etcd lets committed entries wait for theirs (`maxGapBetweenApplyAndCommitIndex`).
pub const MAX_PENDING_PROPOSALS_DEFAULT: usize = 5000;

/// detcd's default bound on the watches of one watch stream.
pub const MAX_WATCHERS_PER_STREAM_DEFAULT: usize = 10_000;

/// detcd's default bound on the watches of all streams together.
pub const MAX_WATCHERS_DEFAULT: usize = 100_000;

/// etcd's default backend quota (2 GiB) when `--quota-backend-bytes` is 0.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;

/// Above this etcd warns at start that `--max-request-bytes` is larger than it recommends.
pub const MAX_REQUEST_BYTES_RECOMMENDED: usize = 10 * 1024 * 1024;

/// etcd refuses election timeouts above this (ms).
const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "detcd",
    about = "detcd: an etcd-compatible key-value server (etcd v3 API)",
    disable_version_flag = true,
    // As with Go's flag package (etcd), a flag given twice takes the last value.
    args_override_self = true
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: "${name}.etcd").
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path to a dedicated WAL directory (default: "${data-dir}/member/wal").
    #[arg(long, env = "ETCD_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,
    /// Comma-separated URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// Comma-separated client URLs to advertise to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// Comma-separated URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// Comma-separated peer URLs of this member to advertise to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping: name=peer-url,... (default: "${name}=${initial-advertise-peer-urls}").
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state ("new" or "existing").
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(long, env = "ETCD_MAX_SNAPSHOTS", default_value_t = 5)]
    pub max_snapshots: usize,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = MAX_REQUEST_BYTES_DEFAULT)]
    pub max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = MAX_TXN_OPS_DEFAULT)]
    pub max_txn_ops: usize,
    /// Maximum concurrent streams that each client can open at a time (HTTP/2 streams per
    /// connection; etcd's default is Go's math.MaxUint32).
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,
    /// detcd's own: proposals that may wait for their apply at once; more get
    /// "etcdserver: too many requests".
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_MAX_PENDING_PROPOSALS",
        default_value_t = MAX_PENDING_PROPOSALS_DEFAULT
    )]
    pub experimental_max_pending_proposals: usize,
    /// detcd's own: watches one watch stream may hold; more are refused.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_MAX_WATCHERS_PER_STREAM",
        default_value_t = MAX_WATCHERS_PER_STREAM_DEFAULT
    )]
    pub experimental_max_watchers_per_stream: usize,
    /// detcd's own: watches all watch streams together may hold; more are refused.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_MAX_WATCHERS",
        default_value_t = MAX_WATCHERS_DEFAULT
    )]
    pub experimental_max_watchers: usize,
    /// List of URLs to listen on for the metrics and health endpoints.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Log level: debug, info, warn, error, panic, or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Proxy mode: "off" (a member), "on" (a proxy to the cluster in --initial-cluster), or
    /// "readonly" (a proxy that refuses writes).
    #[arg(long, env = "ETCD_PROXY", default_value = "off")]
    pub proxy: String,
    /// Duration of periodic watch progress notifications.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m"
    )]
    pub experimental_watch_progress_notify_interval: String,
    /// Size in bytes after which the WAL cuts a new segment. detcd's own knob, hidden: etcd
    /// fixes it at 64 MiB, and only the simulator needs other sizes, to cut and release
    /// segments within a seed's few hundred writes.
    #[arg(long, hide = true, default_value_t = crate::storage::wal::SEGMENT_BYTES_MAX)]
    pub experimental_wal_segment_size: u64,
    /// Checkpoint leases' remaining TTLs through raft, so a new leader does not restart them at
    /// their full TTL.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub experimental_enable_lease_checkpoint: bool,
    /// How often a lease's remaining TTL is checkpointed, when checkpoints are enabled.
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_LEASE_CHECKPOINT_INTERVAL",
        default_value = "5m"
    )]
    pub experimental_lease_checkpoint_interval: String,
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    pub trusted_ca_file: String,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub client_cert_auth: bool,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    pub peer_trusted_ca_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_client_cert_auth: bool,
    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_auto_tls: bool,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers (empty: rustls's defaults).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Minimum TLS version supported by etcd: TLS1.2 or TLS1.3 (empty: TLS1.2).
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// The validity period of the client and peer certificates generated by --auto-tls and --peer-auto-tls, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// Specify auth token type: "simple" (tokens kept by each member), or
    /// "jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|ES256|...,ttl=5m".
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Time (in seconds) an unused simple token lives.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// Cost of the bcrypt hash of user passwords (etcd 3.5's flag; 3.4 fixes it at 10).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = crate::auth::password::BCRYPT_COST_DEFAULT)]
    pub bcrypt_cost: u32,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

/// Member or proxy, as etcd's `startEtcdOrProxyV2` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Member,
    Proxy { read_only: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// One `name=peer-url` member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// The validated configuration `embed::start` runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub wal_dir: PathBuf,
    pub listen_client_addrs: Vec<ListenUrl>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_addrs: Vec<ListenUrl>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub heartbeat_interval: Duration,
    /// Election timeout in heartbeat ticks, as raft counts it.
    pub election_ticks: usize,
    pub snapshot_count: u64,
    /// Snapshot files kept, the newest included; 0 keeps them all.
    pub max_snapshots: usize,
    pub quota_backend_bytes: u64,
    pub max_request_bytes: usize,
    /// Most operations in each of a txn's compare, success and failure lists (nested txns too).
    pub max_txn_ops: usize,
    /// HTTP/2 streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Proposals that may wait for their apply at once (the waiter registry's capacity).
    pub max_pending_proposals: usize,
    pub max_watchers_per_stream: usize,
    pub max_watchers: usize,
    pub listen_metrics_addrs: Vec<ListenUrl>,
    pub log_level: String,
    /// How long a client request waits for raft before `etcdserver: request timed out`.
    pub request_timeout: Duration,
    /// How often an idle watch that asked for `progress_notify` hears the current revision.
    pub watch_progress_notify_interval: Duration,
    /// Size after which the WAL cuts a new segment.
    pub wal_segment_bytes: u64,
    /// How often leases' remaining TTLs are checkpointed; `None` when checkpoints are off.
    pub lease_checkpoint_interval: Option<Duration>,
    /// How long a simple token lives after its last use.
    pub auth_token_ttl: Duration,
    /// `--auth-token jwt,...`: signed tokens instead of simple ones.
    pub jwt: Option<crate::auth::jwt::JwtTokens>,
    pub bcrypt_cost: u32,
    /// TLS for client listeners (and metrics listeners), and for dialing the leader's client URL.
    pub client_tls: TlsInfo,
    /// TLS for peer listeners and for dialing peers.
    pub peer_tls: TlsInfo,
    pub tls_policy: TlsPolicy,
    /// How this member dials peers and client URLs: plain until `embed::start` has read the
    /// certificates (the simulator's stay plain).
    pub dialers: Dialers,
}

/// One listen URL: where to bind, and whether it serves TLS (`https://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenUrl {
    pub addr: SocketAddr,
    /// The URL's host as written (`localhost` stays a name): `--auto-tls` certifies it.
    pub host: String,
    pub secure: bool,
}

/// A configuration error; `main` prints it and exits with code 2, like a flag parse error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(flag: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("invalid value {value:?} for flag --{flag}: {why}"))
}

/// Parses `http://IP:PORT` or `https://IP:PORT` (or `localhost`) into what to bind.
pub fn parse_listen_url(flag: &str, url: &str) -> Result<ListenUrl, ConfigError> {
    let (secure, rest) = match url.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        Some((scheme, _)) => {
            return Err(invalid(
                flag,
                url,
                format!("URL scheme must be http or https, not {scheme:?}"),
            ))
        }
        None => {
            return Err(invalid(
                flag,
                url,
                "expected a URL like http://127.0.0.1:2379",
            ))
        }
    };
    let host_port = rest.trim_end_matches('/');
    if host_port.contains('/') {
        return Err(invalid(flag, url, "a listen URL must not have a path"));
    }
    let bindable = match host_port.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => host_port.to_string(),
    };
    let addr = bindable
        .parse::<SocketAddr>()
        .map_err(|_| invalid(flag, url, "expected IP:port in URL for binding"))?;
    let host = host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(ListenUrl { addr, host, secure })
}

fn parse_listen_urls(flag: &str, urls: &str) -> Result<Vec<ListenUrl>, ConfigError> {
    split_urls(flag, urls)?
        .iter()
        .map(|url| parse_listen_url(flag, url))
        .collect()
}

/// Checks an advertised URL: scheme and host:port, hostnames allowed.
pub fn parse_advertise_urls(flag: &str, urls: &str) -> Result<Vec<String>, ConfigError> {
    let urls = split_urls(flag, urls)?;
    for url in &urls {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| invalid(flag, url, "expected a URL like http://127.0.0.1:2379"))?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(|| invalid(flag, url, "URL must have a port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(invalid(flag, url, "URL must be scheme://host:port"));
        }
    }
    Ok(urls)
}

fn split_urls(flag: &str, urls: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    if list.is_empty() {
        return Err(invalid(flag, urls, "at least one URL is required"));
    }
    Ok(list)
}

/// Parses `name=peer-url,...` (a name may repeat, once per peer URL).
pub fn parse_initial_cluster(value: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').ok_or_else(|| {
            invalid(
                "initial-cluster",
                value,
                format!("{part:?} is not name=peer-url"),
            )
        })?;
        parse_advertise_urls("initial-cluster", url)?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(member) => member.peer_urls.push(url.to_string()),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            }),
        }
    }
    if members.is_empty() {
        return Err(invalid("initial-cluster", value, "no members given"));
    }
    Ok(members)
}

impl Flags {
    /// Turns parsed flags into a validated `Config`, or names the first bad flag.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mode = match self.proxy.as_str() {
            "off" => Mode::Member,
            "on" => Mode::Proxy { read_only: false },
            "readonly" => Mode::Proxy { read_only: true },
            other => return Err(invalid("proxy", other, "must be one of off, readonly, on")),
        };
        if self.name.is_empty() {
            return Err(invalid("name", "", "must not be empty"));
        }
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "", "must not be empty"));
        }
        let wal_dir = self
            .wal_dir
            .unwrap_or_else(|| data_dir.join("member").join("wal"));
        let listen_client_addrs =
            parse_listen_urls("listen-client-urls", &self.listen_client_urls)?;
        let advertise_client_urls =
            parse_advertise_urls("advertise-client-urls", &self.advertise_client_urls)?;
        let listen_peer_addrs = parse_listen_urls("listen-peer-urls", &self.listen_peer_urls)?;
        let initial_advertise_peer_urls = parse_advertise_urls(
            "initial-advertise-peer-urls",
            &self.initial_advertise_peer_urls,
        )?;
        let initial_cluster = match &self.initial_cluster {
            Some(value) => parse_initial_cluster(value)?,
            None => vec![InitialMember {
                name: self.name.clone(),
                peer_urls: initial_advertise_peer_urls.clone(),
            }],
        };
        // A proxy is no member: it only reads the cluster's peer URLs from --initial-cluster.
        if mode == Mode::Member && !initial_cluster.iter().any(|m| m.name == self.name) {
            return Err(ConfigError(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        let initial_cluster_state = match self.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => {
                return Err(invalid(
                    "initial-cluster-state",
                    other,
                    "must be \"new\" or \"existing\"",
                ))
            }
        };
        if self.heartbeat_interval == 0 {
            return Err(invalid("heartbeat-interval", "0", "must be > 0"));
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.election_timeout > ELECTION_TIMEOUT_MS_MAX {
            return Err(ConfigError(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.election_timeout, ELECTION_TIMEOUT_MS_MAX
            )));
        }
        if self.snapshot_count == 0 {
            return Err(invalid("snapshot-count", "0", "must be > 0"));
        }
        if self.max_request_bytes == 0 {
            return Err(invalid("max-request-bytes", "0", "must be > 0"));
        }
        if self.max_concurrent_streams == 0 {
            return Err(invalid("max-concurrent-streams", "0", "must be > 0"));
        }
        for (flag, value) in [
            (
                "experimental-max-pending-proposals",
                self.experimental_max_pending_proposals,
            ),
            (
                "experimental-max-watchers-per-stream",
                self.experimental_max_watchers_per_stream,
            ),
            ("experimental-max-watchers", self.experimental_max_watchers),
        ] {
            if value == 0 {
                return Err(invalid(flag, "0", "must be > 0"));
            }
        }
        let jwt = match self.auth_token.split_once(',') {
            _ if self.auth_token == "simple" => None,
            Some(("jwt", options)) => Some(
                crate::auth::jwt::JwtTokens::from_options(options, parse_go_duration)
                    .map_err(|why| invalid("auth-token", &self.auth_token, why))?,
            ),
            _ => {
                return Err(invalid(
                    "auth-token",
                    &self.auth_token,
                    "expected \"simple\" or \"jwt,pub-key=…,priv-key=…,sign-method=…\"",
                ))
            }
        };
        if self.auth_token_ttl == 0 {
            return Err(invalid("auth-token-ttl", "0", "must be > 0"));
        }
        if !(crate::auth::password::BCRYPT_COST_MIN..=crate::auth::password::BCRYPT_COST_MAX)
            .contains(&self.bcrypt_cost)
        {
            return Err(invalid(
                "bcrypt-cost",
                &self.bcrypt_cost.to_string(),
                format!(
                    "must be between {} and {}",
                    crate::auth::password::BCRYPT_COST_MIN,
                    crate::auth::password::BCRYPT_COST_MAX
                ),
            ));
        }
        if self.experimental_wal_segment_size == 0 {
            return Err(invalid("experimental-wal-segment-size", "0", "must be > 0"));
        }
        let listen_metrics_addrs = match &self.listen_metrics_urls {
            Some(urls) => parse_listen_urls("listen-metrics-urls", urls)?,
            None => Vec::new(),
        };
        match self.log_level.as_str() {
            "debug" | "info" | "warn" | "error" | "panic" | "fatal" => {}
            other => {
                return Err(invalid(
                    "log-level",
                    other,
                    "must be one of debug, info, warn, error, panic, fatal",
                ))
            }
        }
        let watch_progress_notify_interval =
            parse_go_duration(&self.experimental_watch_progress_notify_interval)
                .filter(|interval| !interval.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "experimental-watch-progress-notify-interval",
                        &self.experimental_watch_progress_notify_interval,
                        "expected a positive duration like 10m, 30s or 500ms",
                    )
                })?;
        let lease_checkpoint_interval =
            parse_go_duration(&self.experimental_lease_checkpoint_interval)
                .filter(|interval| !interval.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "experimental-lease-checkpoint-interval",
                        &self.experimental_lease_checkpoint_interval,
                        "expected a positive duration like 5m, 30s or 500ms",
                    )
                })?;
        let client_tls = TlsInfo::new(
            &tls::settings::CLIENT_FLAGS,
            &self.cert_file,
            &self.key_file,
            &self.trusted_ca_file,
            self.client_cert_auth,
            self.auto_tls,
        )
        .map_err(ConfigError)?;
        let peer_tls = TlsInfo::new(
            &tls::settings::PEER_FLAGS,
            &self.peer_cert_file,
            &self.peer_key_file,
            &self.peer_trusted_ca_file,
            self.peer_client_cert_auth,
            self.peer_auto_tls,
        )
        .map_err(ConfigError)?;
        let tls_policy = TlsPolicy::new(
            &self.cipher_suites,
            &self.tls_min_version,
            self.self_signed_cert_validity,
        )
        .map_err(ConfigError)?;
        check_tls_listeners(
            &client_tls,
            &peer_tls,
            [&listen_client_addrs, &listen_metrics_addrs],
            &listen_peer_addrs,
        )?;
        let heartbeat_interval = Duration::from_millis(self.heartbeat_interval);
        Ok(Config {
            name: self.name,
            mode,
            data_dir,
            wal_dir,
            listen_client_addrs,
            advertise_client_urls,
            listen_peer_addrs,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            heartbeat_interval,
            election_ticks: (self.election_timeout / self.heartbeat_interval) as usize,
            snapshot_count: self.snapshot_count,
            max_snapshots: self.max_snapshots,
            quota_backend_bytes: if self.quota_backend_bytes == 0 {
                QUOTA_BACKEND_BYTES_DEFAULT
            } else {
                self.quota_backend_bytes
            },
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            max_concurrent_streams: self.max_concurrent_streams,
            max_pending_proposals: self.experimental_max_pending_proposals,
            max_watchers_per_stream: self.experimental_max_watchers_per_stream,
            max_watchers: self.experimental_max_watchers,
            listen_metrics_addrs,
            log_level: self.log_level,
            // etcd: 5s plus twice the election timeout.
            request_timeout: Duration::from_secs(5)
                + 2 * Duration::from_millis(self.election_timeout),
            watch_progress_notify_interval,
            wal_segment_bytes: self.experimental_wal_segment_size,
            lease_checkpoint_interval: self
                .experimental_enable_lease_checkpoint
                .then_some(lease_checkpoint_interval),
            client_tls,
            peer_tls,
            tls_policy,
            dialers: Dialers::default(),
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            jwt,
            bcrypt_cost: self.bcrypt_cost,
        })
    }
}

/// An `https://` listener needs its side's certificate, as etcd checks; an `http://` one ignores
/// it, with etcd's warnings.
fn check_tls_listeners(
    client_tls: &TlsInfo,
    peer_tls: &TlsInfo,
    client_urls: [&[ListenUrl]; 2],
    peer_urls: &[ListenUrl],
) -> Result<(), ConfigError> {
    for url in client_urls.into_iter().flatten() {
        if url.secure && !client_tls.can_serve() {
            return Err(ConfigError(format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url https://{} with HTTPS scheme",
                url.addr
            )));
        }
        if !url.secure && client_tls.has_files() {
            tracing::warn!(client_url = %url.addr, "scheme is HTTP while key and cert files are present; ignoring key and cert files");
        }
        if !url.secure && client_tls.client_cert_auth {
            tracing::warn!(client_url = %url.addr, "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL");
        }
    }
    for url in peer_urls {
        if url.secure && !peer_tls.can_serve() {
            return Err(ConfigError(format!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                url.addr
            )));
        }
    }
    Ok(())
}

/// A Go duration as etcd's flags take it: `10m`, `1m30s`, `1.5s`, `500ms`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total +=
            Duration::try_from_secs_f64(number.parse::<f64>().ok()? * seconds_per_unit).ok()?;
        rest = after;
    }
    (!text.is_empty()).then_some(total)
}

impl Config {
    /// A single-node configuration for tests and the simulator: defaults plus a data dir and a
    /// client address; peers listen on the same IP, port 2380.
    pub fn single_node(name: &str, data_dir: PathBuf, client_addr: SocketAddr) -> Config {
        let peer_addr = SocketAddr::new(client_addr.ip(), 2380);
        let flags = Flags::parse_from([
            "detcd".to_string(),
            format!("--name={name}"),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls=http://{client_addr}"),
            format!("--advertise-client-urls=http://{client_addr}"),
            format!("--listen-peer-urls=http://{peer_addr}"),
            format!("--initial-advertise-peer-urls=http://{peer_addr}"),
        ]);
        flags
            .into_config()
            .expect("the single-node defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["detcd"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).unwrap().into_config()
    }

    #[test]
    fn defaults_match_etcd() {
        let c = config(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(c.wal_dir, PathBuf::from("default.etcd/member/wal"));
        assert_eq!(
            c.listen_client_addrs,
            vec![ListenUrl {
                addr: "127.0.0.1:2379".parse().unwrap(),
                host: "localhost".into(),
                secure: false
            }]
        );
        assert_eq!(c.election_ticks, 10);
        assert_eq!(c.initial_cluster[0].name, "default");
    }

    #[test]
    fn wal_segment_size_defaults_to_etcds_and_must_be_positive() {
        assert_eq!(config(&[]).unwrap().wal_segment_bytes, 64 << 20);
        let small = config(&["--experimental-wal-segment-size=4096"]).unwrap();
        assert_eq!(small.wal_segment_bytes, 4096);
        let error = config(&["--experimental-wal-segment-size=0"]).unwrap_err();
        assert!(error.0.contains("experimental-wal-segment-size"), "{error}");
    }

    #[test]
    fn max_snapshots_defaults_to_etcds_and_zero_keeps_all() {
        assert_eq!(config(&[]).unwrap().max_snapshots, 5);
        assert_eq!(config(&["--max-snapshots=1"]).unwrap().max_snapshots, 1);
        assert_eq!(config(&["--max-snapshots", "0"]).unwrap().max_snapshots, 0);
        assert!(Flags::try_parse_from(["detcd", "--max-snapshots=-1"]).is_err());
    }

    #[test]
    fn lease_checkpoints_are_off_unless_enabled() {
        assert_eq!(config(&[]).unwrap().lease_checkpoint_interval, None);
        let enabled = ["--experimental-enable-lease-checkpoint"];
        assert_eq!(
            config(&enabled).unwrap().lease_checkpoint_interval,
            Some(Duration::from_secs(300))
        );
        let flags = [
            "--experimental-enable-lease-checkpoint=true",
            "--experimental-lease-checkpoint-interval=750ms",
        ];
        assert_eq!(
            config(&flags).unwrap().lease_checkpoint_interval,
            Some(Duration::from_millis(750))
        );
        let off = ["--experimental-enable-lease-checkpoint=false"];
        assert_eq!(config(&off).unwrap().lease_checkpoint_interval, None);
        let bad = ["--experimental-lease-checkpoint-interval=0s"];
        assert!(config(&bad)
            .unwrap_err()
            .0
            .contains("experimental-lease-checkpoint-interval"));
    }

    #[test]
    fn watch_progress_interval_takes_go_durations() {
        assert_eq!(
            config(&[]).unwrap().watch_progress_notify_interval,
            Duration::from_secs(600)
        );
        for (text, expected) in [
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("200ms", Duration::from_millis(200)),
        ] {
            let flag = format!("--experimental-watch-progress-notify-interval={text}");
            assert_eq!(
                config(&[&flag]).unwrap().watch_progress_notify_interval,
                expected
            );
        }
        for bad in ["", "0s", "10", "5x", "s"] {
            let flag = format!("--experimental-watch-progress-notify-interval={bad}");
            let error = config(&[&flag]).unwrap_err();
            assert!(error
                .0
                .contains("experimental-watch-progress-notify-interval"));
        }
    }

    #[test]
    fn limits_default_to_etcds_and_refuse_bad_values_by_name() {
        let c = config(&[]).unwrap();
        assert_eq!(c.max_request_bytes, 1536 * 1024);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.max_concurrent_streams, u32::MAX);
        assert_eq!(c.max_pending_proposals, 5000);
        let c = config(&[
            "--max-txn-ops=3",
            "--max-concurrent-streams=7",
            "--experimental-max-pending-proposals=9",
            "--experimental-max-watchers-per-stream=2",
            "--experimental-max-watchers=4",
        ])
        .unwrap();
        assert_eq!(
            (
                c.max_txn_ops,
                c.max_concurrent_streams,
                c.max_pending_proposals,
                c.max_watchers_per_stream,
                c.max_watchers
            ),
            (3, 7, 9, 2, 4)
        );
        // As etcd: 0 txn ops is allowed (only empty txns pass), an unparsable number is not.
        assert_eq!(config(&["--max-txn-ops=0"]).unwrap().max_txn_ops, 0);
        for bad in [
            "--max-concurrent-streams=0",
            "--max-request-bytes=0",
            "--experimental-max-pending-proposals=0",
            "--experimental-max-watchers-per-stream=0",
            "--experimental-max-watchers=0",
        ] {
            let error = config(&[bad]).unwrap_err();
            let flag = bad.split('=').next().unwrap();
            assert!(error.0.contains(flag), "{bad}: {error}");
        }
        for bad in ["--max-txn-ops=abc", "--max-concurrent-streams=99999999999"] {
            let error = Flags::try_parse_from(["detcd", bad]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn bad_listen_url_names_the_flag() {
        let err = config(&["--listen-client-urls", "foo"]).unwrap_err();
        assert!(err.0.contains("--listen-client-urls"), "{err}");
        let err = config(&["--listen-peer-urls", "ftp://1.2.3.4:5"]).unwrap_err();
        assert!(err.0.contains("--listen-peer-urls"), "{err}");
    }

    #[test]
    fn election_timeout_must_be_five_heartbeats() {
        let err =
            config(&["--heartbeat-interval", "100", "--election-timeout", "300"]).unwrap_err();
        assert!(err.0.contains("at least as 5 times"), "{err}");
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        let err = Flags::try_parse_from(["detcd", "--no-such-flag"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn initial_cluster_must_name_this_member() {
        let err = config(&[
            "--name",
            "n9",
            "--initial-cluster",
            "n1=http://127.0.0.1:2380",
        ])
        .unwrap_err();
        assert!(err.0.contains("n9"), "{err}");
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["detcd"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).unwrap().into_config()
    }

    const HTTPS_CLIENT: [&str; 2] = [
        "--listen-client-urls=https://127.0.0.1:2379,http://127.0.0.1:22379",
        "--advertise-client-urls=https://127.0.0.1:2379",
    ];

    #[test]
    fn https_client_url_needs_a_certificate_or_auto_tls() {
        let err = config(&HTTPS_CLIENT).unwrap_err();
        assert_eq!(
            err.0,
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        let mut auto = HTTPS_CLIENT.to_vec();
        auto.push("--auto-tls");
        let c = config(&auto).unwrap();
        assert!(c.client_tls.auto_tls);
        assert_eq!(
            c.listen_client_addrs
                .iter()
                .map(|u| u.secure)
                .collect::<Vec<_>>(),
            [true, false]
        );
        let mut files = HTTPS_CLIENT.to_vec();
        files.extend([
            "--cert-file=c.pem",
            "--key-file=k.pem",
            "--client-cert-auth=true",
        ]);
        let c = config(&files).unwrap();
        assert!(c.client_tls.client_cert_auth);
        assert_eq!(c.client_tls.cert_file, Some(PathBuf::from("c.pem")));
    }

    #[test]
    fn https_peer_url_needs_a_peer_certificate() {
        let peer = [
            "--listen-peer-urls=https://127.0.0.1:2380",
            "--initial-advertise-peer-urls=https://127.0.0.1:2380",
        ];
        let err = config(&peer).unwrap_err();
        assert_eq!(
            err.0,
            "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"
        );
        let mut auto = peer.to_vec();
        auto.push("--peer-auto-tls");
        assert!(config(&auto).unwrap().peer_tls.auto_tls);
    }

    #[test]
    fn tls_policy_flags_are_checked() {
        let c = config(&["--tls-min-version=TLS1.3"]).unwrap();
        assert_eq!(c.tls_policy.min_version, tls::settings::TlsVersion::Tls13);
        let err = config(&["--cipher-suites=FOO"]).unwrap_err();
        assert_eq!(err.0, "unexpected TLS cipher suite \"FOO\"");
        let err = config(&["--key-file=k.pem"]).unwrap_err();
        assert_eq!(err.0, "--key-file is given without --cert-file");
    }
}
