//! `--jobs N`: seeds run in child processes, `detcd-sim worker`, N at a time.
//!
//! Why processes, not threads: a seed is a pure function of its options, but a process that runs
//! many seeds grows (about 2.7 MB a seed, sim/README.md), so a child runs at most
//! `--seeds-per-process` seeds and is replaced by a fresh one; and a seed that takes its process
//! down (an abort, a stack overflow) costs only that seed, reported as a crash.
//!
//! The protocol is JSON lines. The parent writes the [`Job`] as the first line of the child's
//! stdin, then one [`Item`] at a time, the next one when the child has answered the last with a
//! [`SeedOutcome`] line on its stdout (so the children share out the seeds as they go, and a
//! `--for` deadline stops handing out seeds without waiting for a batch). Closing stdin ends the
//! child. The child's stray stdout is pointed at `/dev/null`, so nothing else enters the
//! protocol.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::sweep::{self, Item, Job, SeedOutcome};

/// The hidden `worker` subcommand: runs the items on stdin, answers on stdout.
pub fn worker_main() -> i32 {
    let protocol = match take_stdout() {
        Ok(file) => file,
        Err(error) => {
            eprintln!("worker: cannot set up its stdout: {error}");
            return crate::cli::EXIT_USAGE;
        }
    };
    let mut protocol = std::io::LineWriter::new(protocol);
    let mut lines = std::io::stdin().lock().lines();
    let job: Job = match lines
        .next()
        .map(|line| serde_json::from_str(&line.unwrap_or_default()))
    {
        Some(Ok(job)) => job,
        _ => {
            eprintln!("worker: the first line of stdin must be the job (this subcommand is for detcd-sim itself)");
            return crate::cli::EXIT_USAGE;
        }
    };
    let _muted = crate::quiet::Muted::stderr();
    for line in lines.map_while(Result::ok) {
        let item: Item = serde_json::from_str(&line).expect("the parent sends items");
        let outcome = sweep::run_seed(&item, &job);
        let answer = serde_json::to_string(&outcome).expect("outcomes serialize");
        if writeln!(protocol, "{answer}").is_err() {
            break; // The parent is gone.
        }
    }
    0
}

/// A duplicate of stdout for the protocol; descriptor 1 itself then points at `/dev/null`.
fn take_stdout() -> std::io::Result<File> {
    let protocol = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let null = File::options().write(true).open("/dev/null")?;
    if !crate::quiet::redirect(null.as_raw_fd(), 1) {
        return Err(std::io::Error::last_os_error());
    }
    Ok(protocol)
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The item it runs now, with its position in the sweep.
    running: Option<(usize, Item)>,
    done: usize,
}

impl Worker {
    fn hand(&mut self, index: usize, item: Item) {
        let line = serde_json::to_string(&item).expect("items serialize");
        if let Some(stdin) = &mut self.stdin {
            // A failed write means the child died: its end of stdout reports it.
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
        self.running = Some((index, item));
    }
}

/// Runs `items` in up to `jobs` children of at most `per_process` seeds each, calling `each` with
/// every item's position, the item and its outcome, in the order they finish.
pub fn run(
    items: &mut dyn Iterator<Item = Item>,
    job: &Job,
    jobs: usize,
    per_process: usize,
    mut each: impl FnMut(usize, Item, SeedOutcome),
) -> Result<(), String> {
    assert!(jobs > 0 && per_process > 0, "checked by the command line");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find detcd-sim itself: {e}"))?;
    let header = serde_json::to_string(job).expect("jobs serialize");
    // Each child's reader thread sends its lines, then `None` at the end of its stdout.
    let (sender, receiver) = mpsc::channel::<(usize, Option<String>)>();
    let mut workers: BTreeMap<usize, Worker> = BTreeMap::new();
    let (mut spawned, mut handed, mut exhausted) = (0, 0, false);
    loop {
        while !exhausted && workers.len() < jobs {
            let Some(item) = items.next() else {
                exhausted = true;
                break;
            };
            let mut worker = spawn(&exe, &header, spawned, &sender)?;
            worker.hand(handed, item);
            workers.insert(spawned, worker);
            spawned += 1;
            handed += 1;
        }
        if workers.is_empty() {
            return Ok(());
        }
        let (id, line) = receiver.recv().expect("every reader reports its end");
        let worker = workers.get_mut(&id).expect("a reader of a live worker");
        match line {
            Some(line) => {
                let outcome: SeedOutcome = serde_json::from_str(&line)
                    .map_err(|e| format!("a worker answered {line:?}: {e}"))?;
                let (index, item) = worker.running.take().expect("an answer to an item");
                assert_eq!(
                    outcome.record.seed, item.options.seed,
                    "answers come in order"
                );
                each(index, item, outcome);
                worker.done += 1;
                let next = (worker.done < per_process && !exhausted)
                    .then(|| items.next())
                    .flatten();
                match next {
                    Some(item) => {
                        worker.hand(handed, item);
                        handed += 1;
                    }
                    None => {
                        exhausted |= worker.done < per_process;
                        worker.stdin = None; // Ends the child.
                    }
                }
            }
            None => {
                let mut worker = workers.remove(&id).expect("checked above");
                drop(worker.stdin.take());
                let status = worker.child.wait().map_err(|e| e.to_string())?;
                if let Some((index, item)) = worker.running.take() {
                    let outcome = sweep::died(&item, &describe(status));
                    each(index, item, outcome);
                }
            }
        }
    }
}

fn spawn(
    exe: &std::path::Path,
    header: &str,
    id: usize,
    sender: &mpsc::Sender<(usize, Option<String>)>,
) -> Result<Worker, String> {
    let mut child = Command::new(exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start a worker ({}): {e}", exe.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let sender = sender.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send((id, Some(line))).is_err() {
                return;
            }
        }
        let _ = sender.send((id, None));
    });
    let mut stdin = child.stdin.take().expect("piped");
    // A child that cannot read its job dies at once; its end of stdout reports it.
    let _ = writeln!(stdin, "{header}");
    Ok(Worker {
        child,
        stdin: Some(stdin),
        running: None,
        done: 0,
    })
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended: {status}"),
    }
}
