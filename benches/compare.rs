//! detcd against the real etcd 3.4, every workload measured on both servers in one run on the
//! same machine, so that the ratios mean something even when the absolute numbers are noisy.
//!
//! `scripts/bench [--quick] [FILTER...]` runs it (`cargo bench --bench compare -- ...`): see the
//! README. It writes bench/RESULTS.md and prints it. `BENCH_SECONDS` sets the measured window
//! (5 s; 2 s in quick mode, which also leaves out the 1M keys row); a FILTER keeps the rows whose
//! name contains it (`put`, `3 members`, `fill`).

#[cfg(not(madsim))]
#[path = "../tests/common/mod.rs"]
mod common;
#[cfg(not(madsim))]
mod support;

#[cfg(madsim)]
fn main() {
    println!("the compare bench starts real etcd and detcd processes: run it without --cfg madsim");
}

#[cfg(not(madsim))]
fn main() {
    real::main();
}

#[cfg(not(madsim))]
mod real {
    use std::time::{Duration, Instant};

    use crate::common::Server;
    use crate::support::kv::{self, KvOp, KEY_SPACE};
    use crate::support::measure::Measured;
    use crate::support::report::{self, Compared, Facts, RunInfo};
    use crate::support::{self, fanout, keep_alive, proc_stats, Target};

    /// From a fill's last put to reading memory.
    const SETTLE: Duration = Duration::from_secs(3);

    /// What a row runs.
    #[derive(Debug, Clone, Copy)]
    enum Workload {
        Kv {
            op: KvOp,
            clients: usize,
        },
        WatchFanout,
        KeepAlive,
        /// A fresh member written with `keys` keys, then its memory and a restart.
        Fill {
            keys: usize,
            puts_per_request: usize,
        },
    }

    struct Row {
        name: String,
        members: usize,
        workload: Workload,
    }

    fn rows(quick: bool) -> Vec<Row> {
        let mut rows = Vec::new();
        for members in [1, 3] {
            let cluster = if members == 1 {
                "1 member".to_string()
            } else {
                format!("{members} members")
            };
            let kv_rows = [
                ("put", KvOp::Put, 1),
                ("put", KvOp::Put, 64),
                (
                    "range linearizable",
                    KvOp::Range {
                        serializable: false,
                    },
                    64,
                ),
                ("range serializable", KvOp::Range { serializable: true }, 64),
                ("txn-put", KvOp::TxnPut, 64),
            ];
            for (what, op, clients) in kv_rows {
                let client_word = if clients == 1 { "client" } else { "clients" };
                rows.push(Row {
                    name: format!("{what}, {cluster}, {clients} {client_word}"),
                    members,
                    workload: Workload::Kv { op, clients },
                });
            }
        }
        rows.push(Row {
            name: format!(
                "watch fan-out, 1 member, 1 writer → {} watches (events)",
                fanout::STREAMS * fanout::WATCHES_PER_STREAM
            ),
            members: 1,
            workload: Workload::WatchFanout,
        });
        rows.push(Row {
            name: format!("lease keep-alive, 1 member, {} leases", keep_alive::LEASES),
            members: 1,
            workload: Workload::KeepAlive,
        });
        rows.push(Row {
            name: "fill 100k keys (puts, 64 clients), 1 member".into(),
            members: 1,
            workload: Workload::Fill {
                keys: 100_000,
                puts_per_request: 1,
            },
        });
        if !quick {
            rows.push(Row {
                name: "fill 1M keys (txns of 100 puts, 64 clients), 1 member".into(),
                members: 1,
                workload: Workload::Fill {
                    keys: 1_000_000,
                    puts_per_request: 100,
                },
            });
        }
        rows
    }

    struct Args {
        quick: bool,
        filters: Vec<String>,
    }

    fn parse_args() -> Args {
        let mut args = Args {
            quick: false,
            filters: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => args.quick = true,
                // `cargo bench` passes it to every bench binary.
                "--bench" => {}
                other if other.starts_with('-') => {
                    eprintln!(
                        "usage: scripts/bench [--quick] [FILTER...] (unknown option {other})"
                    );
                    std::process::exit(2);
                }
                filter => args.filters.push(filter.to_lowercase()),
            }
        }
        args
    }

    fn window(quick: bool) -> Duration {
        let default = if quick { 2 } else { 5 };
        let seconds = std::env::var("BENCH_SECONDS")
            .ok()
            .map(|text| {
                text.parse()
                    .expect("BENCH_SECONDS is a whole number of seconds")
            })
            .unwrap_or(default);
        Duration::from_secs(seconds)
    }

    pub fn main() {
        let args = parse_args();
        require_etcd();
        let started = Instant::now();
        let window = window(args.quick);
        let facts = Facts::gather();
        let rows: Vec<Row> = rows(args.quick)
            .into_iter()
            .filter(|row| {
                args.filters.is_empty()
                    || args
                        .filters
                        .iter()
                        .any(|f| row.name.to_lowercase().contains(f))
            })
            .collect();
        assert!(!rows.is_empty(), "no row matches {:?}", args.filters);
        let runtime = support::runtime();
        let mut results: Vec<[Option<Measured>; 2]> = rows.iter().map(|_| [None, None]).collect();
        // Rows on a long-lived cluster share it, one cluster per size and server; each fill gets a
        // fresh member. Servers alternate inside each group, so a burst of load from elsewhere on
        // the machine is less likely to land on one side only.
        let steady: Vec<usize> = (0..rows.len())
            .filter(|&i| !matches!(rows[i].workload, Workload::Fill { .. }))
            .collect();
        let mut groups: Vec<Vec<usize>> = [1, 3]
            .iter()
            .map(|&members| {
                steady
                    .iter()
                    .copied()
                    .filter(|&i| rows[i].members == members)
                    .collect()
            })
            .collect();
        groups.extend(
            (0..rows.len())
                .filter(|&i| matches!(rows[i].workload, Workload::Fill { .. }))
                .map(|i| vec![i]),
        );
        for group in groups.iter().filter(|group| !group.is_empty()) {
            for (side, server) in [Server::Detcd, Server::Etcd].into_iter().enumerate() {
                let mut target = Target::start(server, rows[group[0]].members);
                let needs_keys = group
                    .iter()
                    .any(|&i| matches!(rows[i].workload, Workload::Kv { .. }));
                if needs_keys {
                    runtime.block_on(kv::fill(&target.leader_url, KEY_SPACE, 1, &target.pids()));
                }
                for &i in group {
                    let measured = measure(&runtime, &mut target, rows[i].workload, window);
                    println!(
                        "{:<5} {}: {}",
                        support::server_name(server),
                        rows[i].name,
                        summary(&measured)
                    );
                    results[i][side] = Some(measured);
                }
            }
        }
        let compared: Vec<Compared> = rows
            .iter()
            .zip(results)
            .map(|(row, [detcd, etcd])| Compared {
                name: row.name.clone(),
                etcd: etcd.unwrap(),
                detcd: detcd.unwrap(),
            })
            .collect();
        let run = RunInfo {
            window,
            quick: args.quick,
            filters: args.filters,
            took: started.elapsed(),
        };
        let text = report::markdown(&facts, &run, &compared);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        println!("\n{text}\n(written to {})", path.display());
    }

    fn measure(
        runtime: &tokio::runtime::Runtime,
        target: &mut Target,
        workload: Workload,
        window: Duration,
    ) -> Measured {
        let (url, pids) = (target.leader_url.clone(), target.pids());
        match workload {
            Workload::Kv { op, clients } => {
                runtime.block_on(kv::closed_loop(&url, clients, op, window, &pids))
            }
            Workload::WatchFanout => runtime.block_on(fanout::fanout(&url, window, &pids)),
            Workload::KeepAlive => runtime.block_on(keep_alive::keep_alive(&url, window, &pids)),
            Workload::Fill {
                keys,
                puts_per_request,
            } => {
                let mut measured = runtime.block_on(kv::fill(&url, keys, puts_per_request, &pids));
                // Both servers snapshot every 100,000 entries by default, and a fill may just
                // have started one: the figure is the settled one.
                std::thread::sleep(SETTLE);
                measured.rss_bytes = Some(proc_stats::resident_bytes(&pids));
                measured.restart = Some(target.restart_to_healthy());
                measured
            }
        }
    }

    fn summary(measured: &Measured) -> String {
        let mut text = format!(
            "{:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {:.1} µs CPU/op",
            measured.ops_per_second(),
            support::millis(measured.p50),
            support::millis(measured.p99),
            measured.cpu_per_op().as_secs_f64() * 1e6,
        );
        if let (Some(rss), Some(restart)) = (measured.rss_bytes, measured.restart) {
            text += &format!(
                ", RSS {:.0} MiB, restart → healthy {:.0} ms",
                rss as f64 / (1 << 20) as f64,
                support::millis(restart)
            );
        }
        text
    }

    /// The comparison needs the real etcd and etcdctl (which finds the leader): fail at once, and
    /// say how to get them, rather than half-way through a run.
    fn require_etcd() {
        let needed = [
            ("etcd", "--version", "etcd-server"),
            ("etcdctl", "version", "etcd-client"),
        ];
        for (program, version, package) in needed {
            let found = std::process::Command::new(program)
                .arg(version)
                .env("ETCDCTL_API", "3")
                .output()
                .is_ok_and(|output| output.status.success());
            if !found {
                eprintln!(
                    "error: `{program} {version}` does not run: install Debian's {package} \
                     (scripts/bench does it with apt-get)"
                );
                std::process::exit(1);
            }
        }
    }
}
