//! The `detcd` binary: etcd's `main` → flags → member (or proxy) → wait for error or stop;
//! `detcd grpc-proxy start`, etcd's gRPC proxy (`proxy`); or `detcd snapshot status|restore`,
//! which works on a backup file offline (`backup::cli`).

use std::process::ExitCode;

use clap::Parser;
use detcd::config::{Flags, ETCD_API_VERSION};
use detcd::etcdmain::{self, Outcome};
use detcd::io::Io;

/// Exit code for a bad flag or value, as a Go flag parse error gives.
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    // `detcd snapshot status|restore FILE`: offline work on a backup, no member started.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "snapshot")
    {
        return detcd::backup::cli::run(std::env::args_os().skip(1));
    }
    #[cfg(not(madsim))]
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "grpc-proxy")
    {
        return grpc_proxy().await;
    }
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    if flags.version {
        println!("detcd Version: {}", env!("CARGO_PKG_VERSION"));
        println!("etcd API Version: {ETCD_API_VERSION}");
        return ExitCode::SUCCESS;
    }
    let config = match flags.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("detcd: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(&config.log_level);
    exit_code(etcdmain::run(config, Io::production()).await)
}

/// `detcd grpc-proxy start ...`, etcd's `grpc-proxy` command (real sockets only).
#[cfg(not(madsim))]
async fn grpc_proxy() -> ExitCode {
    use detcd::proxy::{GrpcProxyCommand, GrpcProxySubcommand};
    let command = match GrpcProxyCommand::try_parse_from(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let GrpcProxySubcommand::Start(flags) = command.command;
    let config = match flags.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("detcd: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(&config.log_level);
    exit_code(etcdmain::run_grpc_proxy(config).await)
}

fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Stopped => ExitCode::SUCCESS,
        Outcome::Failed(error) => {
            tracing::error!("{error}");
            eprintln!("detcd: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let level = match level {
        "panic" | "fatal" => "error",
        other => other,
    };
    // RUST_LOG, when set, refines the level given by --log-level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},raft=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
