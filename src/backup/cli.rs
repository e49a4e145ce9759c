//! `detcd snapshot status|restore`: the offline half of etcdctl's `snapshot` command, for etcd
//! 3.4's backups (whether saved from etcd or detcd) and detcd's older own format. Flags,
//! defaults and output follow `etcdctl snapshot` 3.4; `save` stays etcdctl's job, since detcd
//! streams its backups over etcd's `Maintenance.Snapshot`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{parse_advertise_urls, parse_initial_cluster};
use crate::io::{Disk, RealDisk};

use super::restore::{restore, RestoreOptions};
use super::{decode, Backup, Status};

#[derive(Parser, Debug)]
#[command(
    name = "detcd snapshot",
    about = "Inspects and restores etcd and detcd backups"
)]
struct SnapshotCli {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Gets backend snapshot status of a given file.
    Status {
        file: PathBuf,
        /// Output format: simple, table or json.
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Restores a member data dir from a backup file.
    Restore {
        file: PathBuf,
        /// Human-readable name for this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Path to the data directory (default: "${name}.etcd").
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Path to the WAL directory (default: "${data-dir}/member/wal").
        #[arg(long)]
        wal_dir: Option<PathBuf>,
        /// Initial cluster configuration for restore bootstrap.
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Initial cluster token for the etcd cluster during restore bootstrap.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Ignore snapshot integrity hash value (required if copied from data directory).
        #[arg(long)]
        skip_hash_check: bool,
    },
}

/// Runs `detcd snapshot ...`; `args` start with the program name.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match SnapshotCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    match execute(cli.command, Arc::new(RealDisk)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: SnapshotCommand, disk: Arc<dyn Disk>) -> Result<String, String> {
    match command {
        SnapshotCommand::Status { file, write_out } => {
            // Like etcdctl's, status reads the database and leaves the trailer to restore.
            let backup = read_backup(disk.as_ref(), &file, true)?;
            format_status(&backup.status, &write_out)
        }
        SnapshotCommand::Restore {
            file,
            name,
            data_dir,
            wal_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
        } => {
            // The whole file is checked before anything is written to the data dir.
            let backup = read_backup(disk.as_ref(), &file, skip_hash_check)?;
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.etcd")));
            let options = RestoreOptions {
                wal_dir: wal_dir.unwrap_or_else(|| data_dir.join("member").join("wal")),
                data_dir,
                initial_cluster: parse_initial_cluster(&initial_cluster)
                    .map_err(|e| e.to_string())?,
                initial_cluster_token,
                initial_advertise_peer_urls: parse_advertise_urls(
                    "initial-advertise-peer-urls",
                    &initial_advertise_peer_urls,
                )
                .map_err(|e| e.to_string())?,
                name,
            };
            let restored = restore(disk, &backup, &options)?;
            Ok(format!(
                "restored snapshot {} at revision {} into {} (member {:x}, cluster {:x})\n",
                file.display(),
                backup.status.revision,
                options.data_dir.display(),
                restored.member_id,
                restored.cluster_id
            ))
        }
    }
}

fn read_backup(
    disk: &dyn Disk,
    file: &std::path::Path,
    skip_hash_check: bool,
) -> Result<Backup, String> {
    let bytes = disk
        .read(file)
        .map_err(|e| format!("stat {}: {e}", file.display()))?;
    decode(&bytes, skip_hash_check).map_err(|e| format!("{}: {e}", file.display()))
}

/// etcdctl's `snapshot status` output in its three formats.
fn format_status(status: &Status, write_out: &str) -> Result<String, String> {
    let size = human_bytes(status.total_size_bytes);
    match write_out {
        "simple" => Ok(format!(
            "{:x}, {}, {}, {size}\n",
            status.hash, status.revision, status.total_keys
        )),
        "json" => Ok(format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            status.hash, status.revision, status.total_keys, status.total_size_bytes
        )),
        "table" => Ok(table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[
                format!("{:x}", status.hash),
                status.revision.to_string(),
                status.total_keys.to_string(),
                size,
            ],
        )),
        other => Err(format!("unsupported output format {other:?}")),
    }
}

/// One-row table as etcdctl draws it: centered headers, right-aligned cells.
fn table(headers: &[&str], row: &[String]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .zip(row)
        .map(|(header, cell)| header.len().max(cell.len()))
        .collect();
    let rule: String = widths
        .iter()
        .map(|width| format!("+{}", "-".repeat(width + 2)))
        .collect::<String>()
        + "+\n";
    let header_line: String = headers
        .iter()
        .zip(&widths)
        .map(|(header, width)| {
            let left = (width - header.len()) / 2;
            let right = width - header.len() - left;
            format!("| {}{header}{} ", " ".repeat(left), " ".repeat(right))
        })
        .collect::<String>()
        + "|\n";
    let row_line: String = row
        .iter()
        .zip(&widths)
        .map(|(cell, width)| format!("| {cell:>width$} "))
        .collect::<String>()
        + "|\n";
    format!("{rule}{header_line}{rule}{row_line}{rule}")
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (bytes as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_go_humanize() {
        assert_eq!(human_bytes(7), "7 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1234), "1.2 kB");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(2_100_000), "2.1 MB");
    }

    #[test]
    fn the_status_table_matches_etcdctls() {
        let status = Status {
            hash: 0xffc1_8af6,
            revision: 3,
            total_keys: 6,
            total_size_bytes: 20480,
        };
        assert_eq!(
            format_status(&status, "table").unwrap(),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | ffc18af6 |        3 |          6 |      20 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert_eq!(
            format_status(&status, "simple").unwrap(),
            "ffc18af6, 3, 6, 20 kB\n"
        );
    }
}
