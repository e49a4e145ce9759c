//! The change history as watch events, for watchers catching up from an
//! old revision.
//!
//! Events are reported as etcd's watch reports them: a delete's `kv` holds
//! only the key and the deleting revision, and `prev_kv` is the key's value
//! at the revision before the event (absent for creations, or when that
//! revision has been compacted), which is how etcd's watch server fills it.

use std::ops::RangeInclusive;

use crate::pb::mvccpb::{event::EventType, Event, KeyValue};

use super::{KvStore, LoggedChange, MvccError};

impl KvStore {
    /// Every event at revisions `>= start_revision` still in the history,
    /// in revision order. Fails if events after `start_revision` may have
    /// been compacted away.
    pub fn events_since(&self, start_revision: i64) -> Result<Vec<Event>, MvccError> {
        self.events_in(start_revision..=i64::MAX)
    }

    /// The delete events at the compaction revision that the compaction dropped with their
    /// tombstones (etcd drops them too). A watch still waiting for events of that revision may
    /// need one of them: it must be told it was compacted rather than silently miss it.
    pub fn deletes_dropped_by_compaction(&self) -> Vec<Event> {
        self.deletes_at_compact_rev
            .iter()
            .map(|key| Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: key.to_vec(),
                    mod_revision: self.compact_rev,
                    ..Default::default()
                }),
                prev_kv: None,
            })
            .collect()
    }

    /// Every event at the given revisions still in the history, in
    /// revision order: a bounded piece of [`KvStore::events_since`], so a
    /// watcher far behind catches up in steps of bounded work.
    pub fn events_in(&self, revisions: RangeInclusive<i64>) -> Result<Vec<Event>, MvccError> {
        let (start_revision, end_revision) = revisions.into_inner();
        if start_revision < self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if start_revision > end_revision {
            return Ok(Vec::new());
        }
        let events = self
            .log
            .mains(start_revision, end_revision)
            .iter()
            .map(|change| {
                let (r#type, kv) = if change.tombstone {
                    let kv = KeyValue {
                        key: change.key.to_vec(),
                        mod_revision: change.rev.main,
                        ..Default::default()
                    };
                    (EventType::Delete, kv)
                } else {
                    (EventType::Put, change.kv())
                };
                let is_create = !change.tombstone && kv.create_revision == kv.mod_revision;
                let before = change.rev.main - 1;
                let prev_kv = if is_create || before < self.compact_rev {
                    None
                } else {
                    self.kv_at(&kv.key, before).map(LoggedChange::kv)
                };
                Event {
                    r#type: r#type as i32,
                    kv: Some(kv),
                    prev_kv,
                }
            })
            .collect();
        Ok(events)
    }
}
