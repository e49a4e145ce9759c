//! One watch on a stream: the keys it covers, the events it wants, and how far it has been sent.
//!
//! The create request is normalized the way etcd's watch server does it (an empty key is `\0`,
//! the smallest key; `range_end == "\0"` means every key from `key` on), so the same request
//! covers the same keys here as in etcd.

use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::etcdserverpb::WatchCreateRequest;
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::Event;

/// etcd's `AutoWatchID`: a create request with this id asks the server to pick one.
pub const AUTO_WATCH_ID: i64 = 0;

/// Which keys a watch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Keys {
    One(Vec<u8>),
    FromKey(Vec<u8>),
    /// `[start, end)`, never empty.
    Range {
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

impl Keys {
    fn contains(&self, key: &[u8]) -> bool {
        match self {
            Keys::One(one) => key == one.as_slice(),
            Keys::FromKey(start) => key >= start.as_slice(),
            Keys::Range { start, end } => key >= start.as_slice() && key < end.as_slice(),
        }
    }
}

/// Why a create request made no watch; the text is etcd's `cancel_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateError {
    EmptyRange,
    DuplicateId,
    /// The stream or the server holds its maximum of watches.
    TooManyWatchers,
}

impl CreateError {
    pub fn reason(self) -> &'static str {
        match self {
            CreateError::EmptyRange => "mvcc: watcher range is empty",
            CreateError::DuplicateId => "mvcc: duplicate watch ID provided on the WatchStream",
            // etcd's text for its resource limits: etcd clients map it to ResourceExhausted.
            CreateError::TooManyWatchers => "etcdserver: too many requests",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Watcher {
    pub id: i64,
    keys: Keys,
    /// The range as requested, `(key, range_end)`: what reading it needs permission for.
    pub requested_range: (Vec<u8>, Vec<u8>),
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    /// Split responses larger than the stream's limit into fragments.
    pub fragment: bool,
    pub progress_notify: bool,
    /// The oldest revision whose events this watch has not been sent yet.
    pub next_revision: i64,
    /// No events went out since the last progress tick (etcd elides the notification otherwise).
    pub progress_due: bool,
}

impl Watcher {
    /// A watch for `request`, sending events from `next_revision` on; it gets its id from
    /// [`Watcher::with_id`] once the request is known to be valid, so that, as in etcd, a refused
    /// request uses up no id.
    pub fn new(request: &WatchCreateRequest, next_revision: i64) -> Result<Watcher, CreateError> {
        assert!(next_revision > 0, "revisions start at 1: {next_revision}");
        let key = if request.key.is_empty() {
            vec![0]
        } else {
            request.key.clone()
        };
        let keys = match request.range_end.as_slice() {
            [] => Keys::One(key),
            [0] => Keys::FromKey(key),
            end if key.as_slice() >= end => return Err(CreateError::EmptyRange),
            end => Keys::Range {
                start: key,
                end: end.to_vec(),
            },
        };
        let has_filter = |filter: FilterType| request.filters.contains(&(filter as i32));
        Ok(Watcher {
            id: AUTO_WATCH_ID,
            keys,
            requested_range: (request.key.clone(), request.range_end.clone()),
            no_put: has_filter(FilterType::Noput),
            no_delete: has_filter(FilterType::Nodelete),
            prev_kv: request.prev_kv,
            fragment: request.fragment,
            progress_notify: request.progress_notify,
            next_revision,
            progress_due: true,
        })
    }

    pub fn with_id(self, id: i64) -> Watcher {
        Watcher { id, ..self }
    }

    /// True while events this watch has not been sent may exist at or below `revision`.
    pub fn is_behind(&self, revision: i64) -> bool {
        self.next_revision <= revision
    }

    /// This watch's share of `events`, which hold every event of the revisions up to and including
    /// `through_revision`: the events it covers and has not been sent, then marks them sent.
    pub fn take(&mut self, events: &[Event], through_revision: i64) -> Vec<Event> {
        let selected = events
            .iter()
            .filter(|event| revision_of(event) >= self.next_revision && self.wants(event))
            .map(|event| self.shaped(event))
            .collect();
        self.next_revision = self.next_revision.max(through_revision + 1);
        selected
    }

    /// Whether this watch has yet to be sent one of `events`.
    pub fn awaits_any(&self, events: &[Event]) -> bool {
        events
            .iter()
            .any(|event| revision_of(event) >= self.next_revision && self.wants(event))
    }

    fn wants(&self, event: &Event) -> bool {
        let key = event.kv.as_ref().map_or(&[][..], |kv| kv.key.as_slice());
        let filtered = match event.r#type() {
            EventType::Put => self.no_put,
            EventType::Delete => {
                self.no_delete || (crate::planted_bug!(NoPutFilterDropsDeletes) && self.no_put)
            }
        };
        !filtered && self.keys.contains(key)
    }

    fn shaped(&self, event: &Event) -> Event {
        let mut event = event.clone();
        if !self.prev_kv {
            event.prev_kv = None;
        }
        event
    }
}

pub fn revision_of(event: &Event) -> i64 {
    event
        .kv
        .as_ref()
        .expect("a stored event carries its key-value")
        .mod_revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::mvccpb::KeyValue;

    fn event(kind: EventType, key: &str, revision: i64) -> Event {
        Event {
            r#type: kind as i32,
            kv: Some(KeyValue {
                key: key.into(),
                mod_revision: revision,
                ..Default::default()
            }),
            prev_kv: Some(KeyValue {
                key: key.into(),
                value: b"before".to_vec(),
                ..Default::default()
            }),
        }
    }

    fn watch(key: &str, range_end: &[u8]) -> WatchCreateRequest {
        WatchCreateRequest {
            key: key.into(),
            range_end: range_end.to_vec(),
            ..Default::default()
        }
    }

    fn keys_taken(request: &WatchCreateRequest, events: &[Event]) -> Vec<String> {
        let mut watcher = Watcher::new(request, 1).unwrap();
        watcher
            .take(events, 100)
            .iter()
            .map(|e| String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap())
            .collect()
    }

    fn puts(keys: &[&str]) -> Vec<Event> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| event(EventType::Put, key, i as i64 + 2))
            .collect()
    }

    #[test]
    fn a_single_key_watch_sees_only_that_key() {
        let events = puts(&["a", "foo", "foo1", "fop"]);
        assert_eq!(keys_taken(&watch("foo", b""), &events), ["foo"]);
    }

    #[test]
    fn a_range_watch_sees_keys_from_start_up_to_but_not_including_end() {
        let events = puts(&["a", "foo", "foo1", "fop"]);
        assert_eq!(keys_taken(&watch("foo", b"fop"), &events), ["foo", "foo1"]);
    }

    #[test]
    fn a_zero_range_end_watches_every_key_from_the_key_on() {
        let events = puts(&["a", "foo", "foo1", "fop"]);
        assert_eq!(keys_taken(&watch("foo1", b"\0"), &events), ["foo1", "fop"]);
        assert_eq!(keys_taken(&watch("", b"\0"), &events).len(), 4);
    }

    #[test]
    fn an_empty_key_is_the_smallest_key() {
        let events = vec![
            event(EventType::Put, "\0", 2),
            event(EventType::Put, "a", 3),
        ];
        assert_eq!(keys_taken(&watch("", b""), &events), ["\0"]);
    }

    #[test]
    fn a_range_that_ends_at_or_before_its_start_is_refused() {
        for end in [&b"foo"[..], b"fo", b"a"] {
            assert_eq!(
                Watcher::new(&watch("foo", end), 1).unwrap_err(),
                CreateError::EmptyRange
            );
        }
    }

    #[test]
    fn filters_drop_puts_or_deletes() {
        let events = vec![
            event(EventType::Put, "k", 2),
            event(EventType::Delete, "k", 3),
        ];
        let mut request = watch("k", b"");
        request.filters = vec![FilterType::Noput as i32];
        let types = |request: &WatchCreateRequest| {
            let mut watcher = Watcher::new(request, 1).unwrap();
            watcher
                .take(&events, 3)
                .iter()
                .map(Event::r#type)
                .collect::<Vec<_>>()
        };
        assert_eq!(types(&request), [EventType::Delete]);
        request.filters = vec![FilterType::Nodelete as i32];
        assert_eq!(types(&request), [EventType::Put]);
    }

    #[test]
    fn prev_kv_is_sent_only_when_asked_for() {
        let events = vec![event(EventType::Put, "k", 2)];
        let mut plain = Watcher::new(&watch("k", b""), 1).unwrap();
        assert_eq!(plain.take(&events, 2)[0].prev_kv, None);
        let mut request = watch("k", b"");
        request.prev_kv = true;
        let mut with_prev = Watcher::new(&request, 1).unwrap();
        assert!(with_prev.take(&events, 2)[0].prev_kv.is_some());
    }

    #[test]
    fn events_already_sent_or_before_the_start_are_never_sent_again() {
        let events = puts(&["k", "k", "k", "k"]);
        let mut watcher = Watcher::new(&watch("k", b""), 3).unwrap();
        let revisions = |taken: Vec<Event>| taken.iter().map(revision_of).collect::<Vec<_>>();
        assert_eq!(revisions(watcher.take(&events[..3], 4)), [3, 4]);
        assert_eq!(watcher.next_revision, 5);
        assert_eq!(revisions(watcher.take(&events, 5)), [5]);
        assert!(!watcher.is_behind(5));
        assert!(watcher.is_behind(6));
    }
}
