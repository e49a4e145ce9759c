//! Keeps madsim's panic notices off the terminal while seeds run.
//!
//! madsim writes a `context: node=… task=…` line to stderr for every panic a node's task raises,
//! before it decides to restart the node; a crash at a failpoint is such a panic, so a sweep
//! printed hundreds of them between its progress lines. The simulator already captures every
//! panic that matters (see `simulation`), so while seeds run, file descriptor 2 points at
//! `/dev/null` and progress goes to the real stderr through a duplicate.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// While alive, stderr is muted; [`Muted::progress`] still reaches the terminal.
pub struct Muted {
    saved: Option<OwnedFd>,
}

impl Muted {
    /// Mutes stderr; if that is impossible (no `/dev/null`), leaves it as it is.
    pub fn stderr() -> Muted {
        let saved = std::io::stderr().as_fd().try_clone_to_owned().ok();
        let muted = saved.is_some()
            && File::options()
                .write(true)
                .open("/dev/null")
                .is_ok_and(|null| redirect(null.as_raw_fd(), 2));
        Muted {
            saved: saved.filter(|_| muted),
        }
    }

    /// Writes one line to the stderr the process started with.
    pub fn progress(&self, line: &str) {
        match self.saved.as_ref().and_then(|fd| fd.try_clone().ok()) {
            Some(fd) => {
                let _ = writeln!(File::from(fd), "{line}");
            }
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for Muted {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            redirect(saved.as_raw_fd(), 2);
        }
    }
}

/// Points descriptor `to` at what `from` is.
pub(crate) fn redirect(from: i32, to: i32) -> bool {
    // SAFETY: dup2 on two descriptors this process owns; it only replaces `to`.
    unsafe { libc::dup2(from, to) == to }
}
