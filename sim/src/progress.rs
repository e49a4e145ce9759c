//! What a sweep tells the person watching it: each failing seed's text, and its progress — a bar
//! with ETA on a terminal (indicatif), or a plain line every ten seconds when stderr is a file or
//! a CI log.
//!
//! Both go to the stderr the process started with, duplicated before seeds run: while seeds run
//! in this process, descriptor 2 points at `/dev/null` (`quiet`).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many seeds a sweep will run, or for how long.
#[derive(Debug, Clone, Copy)]
pub enum Extent {
    Seeds(u64),
    For(Duration),
}

pub struct Printer {
    /// Human text goes to stderr (`--json` took stdout), else to stdout.
    human_to_stderr: bool,
    stderr: Option<File>,
    bar: Option<ProgressBar>,
    extent: Extent,
    started: Instant,
    last_line: Instant,
}

impl Printer {
    pub fn new(human_to_stderr: bool, extent: Extent) -> Printer {
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from);
        let bar = stderr
            .as_ref()
            .and_then(|file| file.try_clone().ok())
            .map(|file| console::Term::read_write_pair(std::io::stdin(), file))
            .filter(|term| term.is_term())
            .map(|term| bar(term, extent));
        Printer {
            human_to_stderr,
            stderr,
            bar,
            extent,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Prints human text (it ends with its own newline, or is empty).
    pub fn print(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let (to_stderr, stderr) = (self.human_to_stderr, &self.stderr);
        let write = || match (to_stderr, stderr) {
            (true, Some(file)) => {
                let _ = (&*file).write_all(text.as_bytes());
            }
            (true, None) => eprint!("{text}"),
            (false, _) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// One more seed is done; `status` says how the sweep stands ("3 failed, 250 seeds/min …").
    pub fn seed_done(&mut self, done: u64, status: &str) {
        self.show(done, status, false);
    }

    /// The sweep is over: clears the bar, or prints the last plain line.
    pub fn finish(&mut self, done: u64, status: &str) {
        self.show(done, status, true);
    }

    fn show(&mut self, done: u64, status: &str, last: bool) {
        let elapsed = self.started.elapsed();
        if let Some(bar) = &self.bar {
            match self.extent {
                Extent::Seeds(_) => bar.set_position(done),
                Extent::For(limit) => bar.set_position(elapsed.min(limit).as_secs()),
            }
            bar.set_message(match self.extent {
                Extent::Seeds(_) => status.to_string(),
                Extent::For(_) => format!("{done} seeds, {status}"),
            });
            if last {
                bar.finish_and_clear();
            }
            return;
        }
        if self.last_line.elapsed() > Duration::from_secs(10) || last {
            self.last_line = Instant::now();
            let of = match self.extent {
                Extent::Seeds(total) => format!("{done}/{total}"),
                Extent::For(limit) => {
                    format!("{done} seeds, {}/{} s", elapsed.as_secs(), limit.as_secs())
                }
            };
            let line = format!("[{of}] {status}\n");
            match &self.stderr {
                Some(file) => {
                    let _ = (&*file).write_all(line.as_bytes());
                }
                None => eprint!("{line}"),
            }
        }
    }
}

fn bar(term: console::Term, extent: Extent) -> ProgressBar {
    let (length, template) = match extent {
        Extent::Seeds(total) => (
            total,
            "{elapsed_precise} [{bar:30}] {pos}/{len} seeds, ETA {eta}  {wide_msg}",
        ),
        Extent::For(limit) => (
            limit.as_secs().max(1),
            "{elapsed_precise} [{bar:30}] ETA {eta}  {wide_msg}",
        ),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::term(term, 4));
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}
