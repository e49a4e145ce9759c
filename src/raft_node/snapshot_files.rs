//! Raft snapshot files (etcd's `snap` package): `{term:016x}-{index:016x}.snap` in the member's
//! `snap` directory, each a CRC-32 of the body followed by the protobuf-encoded raft `Snapshot`
//! (metadata + detcd's `SnapshotData`).
//!
//! The file is written atomically and durably *before* the WAL records the snapshot marker, so a
//! marker never points at a snapshot that a crash lost; old files are purged only *after* the
//! marker is durable, and never the one it names (bug 7: purging inside `save`, with orphans of
//! earlier crashes between file and marker sorting after the marker's file, deleted the file the
//! durable marker still named, and the member could no longer start). A checksum mismatch on load
//! refuses the start: a snapshot stands in for log entries that are gone.

use std::path::PathBuf;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{Snapshot, SnapshotMetadata};

use crate::io::Disk;
use crate::metrics::Stopwatch;

/// Snapshot files kept, the newest included, unless told otherwise (etcd's `--max-snapshots`).
pub const MAX_SNAPSHOTS_DEFAULT: usize = 5;

#[derive(Clone)]
pub struct SnapshotFiles {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// Files kept by [`SnapshotFiles::purge`], the newest included; 0 keeps them all.
    max_files: usize,
    /// Times each durable write: detcd's backend commit (etcd's
    /// `etcd_disk_backend_commit_duration_seconds`), once the server says.
    commit_timing: Option<Stopwatch>,
}

impl SnapshotFiles {
    pub fn new(disk: Arc<dyn Disk>, dir: PathBuf) -> SnapshotFiles {
        SnapshotFiles {
            disk,
            dir,
            max_files: MAX_SNAPSHOTS_DEFAULT,
            commit_timing: None,
        }
    }

    /// Keeps `max_files` files (the newest included) from now on; 0 keeps them all.
    pub fn keep(mut self, max_files: usize) -> SnapshotFiles {
        self.max_files = max_files;
        self
    }

    /// Times every save with `stopwatch` from now on.
    pub fn time_saves(&mut self, stopwatch: Stopwatch) {
        self.commit_timing = Some(stopwatch);
    }

    fn file_name(metadata: &SnapshotMetadata) -> String {
        format!("{:016x}-{:016x}.snap", metadata.term, metadata.index)
    }

    pub fn save(&self, snapshot: &Snapshot) -> Result<(), String> {
        let _commit = self.commit_timing.as_ref().map(Stopwatch::start);
        let body = snapshot
            .write_to_bytes()
            .map_err(|e| format!("encoding snapshot: {e}"))?;
        let mut file = crc32fast::hash(&body).to_le_bytes().to_vec();
        file.extend_from_slice(&body);
        let name = Self::file_name(snapshot.get_metadata());
        self.disk
            .create_dir_all(&self.dir)
            .and_then(|()| self.disk.write_atomic(&self.dir.join(&name), &file))
            .map_err(|e| format!("writing snapshot {name}: {e}"))?;
        Ok(())
    }

    pub fn load(&self, metadata: &SnapshotMetadata) -> Result<Snapshot, String> {
        let name = Self::file_name(metadata);
        let path = self.dir.join(&name);
        let file = self
            .disk
            .read(&path)
            .map_err(|e| format!("snapshot {} is unreadable: {e}", path.display()))?;
        let corrupt = |why: &str| format!("snapshot {} is corrupt: {why}", path.display());
        if file.len() < 4 {
            return Err(corrupt("shorter than its checksum"));
        }
        let (crc, body) = file.split_at(4);
        if crc32fast::hash(body).to_le_bytes() != crc && !crate::planted_bug!(SkipSnapshotChecksum)
        {
            return Err(corrupt("checksum mismatch"));
        }
        let snapshot = Snapshot::parse_from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
        if snapshot.get_metadata().index != metadata.index
            || snapshot.get_metadata().term != metadata.term
        {
            return Err(corrupt("its metadata does not match its name"));
        }
        Ok(snapshot)
    }

    /// Once the WAL's marker for `latest` is durable: removes the files of snapshots no marker
    /// will name again (orphans after `latest`, left by crashes between file and marker) and
    /// those before it beyond the `max_files - 1` newest.
    pub fn purge(&self, latest: &SnapshotMetadata) {
        let Ok(mut names) = self.disk.list(&self.dir) else {
            return;
        };
        names.retain(|name| name.ends_with(".snap"));
        let latest = Self::file_name(latest);
        // Names sort by (term, index).
        let older = names.iter().filter(|name| **name < latest).count();
        let excess = match self.max_files {
            0 => 0,
            max_files => older.saturating_sub(max_files - 1),
        };
        let doomed = names[..excess]
            .iter()
            .chain(names.iter().filter(|name| **name > latest));
        for name in doomed {
            if let Err(error) = self.disk.remove(&self.dir.join(name)) {
                tracing::warn!(%name, %error, "could not remove an old snapshot file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FileSystem, SimDisk};

    fn snapshot(term: u64, index: u64, data: &[u8]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().term = term;
        snapshot.mut_metadata().index = index;
        snapshot.data = data.to_vec().into();
        snapshot
    }

    #[test]
    fn a_saved_snapshot_loads_back_and_old_ones_are_purged() {
        // (--max-snapshots, files left after seven snapshots)
        for (max_files, left) in [(3, 3), (1, 1), (0, 7), (MAX_SNAPSHOTS_DEFAULT, 5)] {
            let disk = SimDisk::new(1);
            let files = SnapshotFiles::new(Arc::new(disk.clone()), "/snap".into()).keep(max_files);
            for index in 1..=7 {
                let saved = snapshot(2, index * 10, b"payload");
                files.save(&saved).unwrap();
                files.purge(saved.get_metadata());
            }
            let loaded = files.load(snapshot(2, 70, b"").get_metadata()).unwrap();
            assert_eq!(&loaded.data[..], b"payload");
            let names = disk.list(std::path::Path::new("/snap")).unwrap();
            assert_eq!(names.len(), left, "--max-snapshots={max_files}: {names:?}");
        }
    }

    /// Orphans (files whose marker a crash prevented) never push out the file the latest
    /// durable marker names, and go once a newer marker is durable.
    #[test]
    fn orphans_never_purge_the_file_the_marker_names() {
        let disk = SimDisk::new(1);
        let files = SnapshotFiles::new(Arc::new(disk.clone()), "/snap".into()).keep(3);
        let marked = snapshot(2, 10, b"marked");
        files.save(&marked).unwrap();
        files.purge(marked.get_metadata());
        for index in [20, 30, 40, 50] {
            files.save(&snapshot(2, index, b"orphan")).unwrap();
        }
        assert_eq!(
            &files.load(marked.get_metadata()).unwrap().data[..],
            b"marked"
        );
        let next = snapshot(3, 60, b"next");
        files.save(&next).unwrap();
        files.purge(next.get_metadata());
        let names = disk.list(std::path::Path::new("/snap")).unwrap();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(
            names.last().unwrap(),
            &SnapshotFiles::file_name(next.get_metadata())
        );
    }

    #[test]
    fn a_flipped_bit_is_refused() {
        let disk = SimDisk::new(1);
        let files = SnapshotFiles::new(Arc::new(disk.clone()), "/snap".into());
        let saved = snapshot(3, 7, b"some state");
        files.save(&saved).unwrap();
        let path = PathBuf::from("/snap").join(SnapshotFiles::file_name(saved.get_metadata()));
        disk.flip_bit(&path, 9, 2).unwrap();
        let error = files.load(saved.get_metadata()).unwrap_err();
        assert!(error.contains("checksum mismatch"), "{error}");
    }
}
