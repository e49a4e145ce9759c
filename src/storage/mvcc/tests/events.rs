use super::support::*;
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::{Event, KeyValue};
use crate::storage::mvcc::{KvStore, MvccError};

fn event(kind: EventType, kv: KeyValue, prev_kv: Option<KeyValue>) -> Event {
    Event {
        r#type: kind as i32,
        kv: Some(kv),
        prev_kv,
    }
}

fn tombstone(key: &str, rev: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        mod_revision: rev,
        ..Default::default()
    }
}

#[test]
fn events_list_every_change_with_the_previous_value() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    del(&mut store, "a", "");
    assert_eq!(
        store.events_since(2).unwrap(),
        vec![
            event(EventType::Put, kv("a", "1", 2, 2, 1), None),
            event(
                EventType::Put,
                kv("a", "2", 2, 3, 2),
                Some(kv("a", "1", 2, 2, 1))
            ),
            event(
                EventType::Delete,
                tombstone("a", 4),
                Some(kv("a", "2", 2, 3, 2))
            ),
        ]
    );
    assert_eq!(store.events_since(4).unwrap().len(), 1);
    assert!(store.events_since(5).unwrap().is_empty());
}

#[test]
fn events_of_one_txn_share_its_revision_in_op_order() {
    let mut store = KvStore::new();
    put(&mut store, "b", "0");
    txn(
        &mut store,
        vec![op_put("c", "1"), op_put("b", "1"), op_del("a", "b")],
    )
    .unwrap();
    let keys: Vec<_> = store
        .events_since(3)
        .unwrap()
        .into_iter()
        .map(|e| {
            let kv = e.kv.unwrap();
            (kv.key, kv.mod_revision)
        })
        .collect();
    assert_eq!(keys, [(b"c".to_vec(), 3), (b"b".to_vec(), 3)]);
}

#[test]
fn a_delete_in_the_same_txn_as_a_put_reports_the_value_before_the_txn() {
    // etcd's watch fills prev_kv by reading at the event's revision - 1.
    let mut store = KvStore::new();
    put(&mut store, "k", "0");
    txn(
        &mut store,
        vec![
            op_txn(vec![], vec![op_put("k", "1")], vec![]),
            op_txn(vec![], vec![op_del("k", "")], vec![]),
        ],
    )
    .unwrap();
    let events = store.events_since(3).unwrap();
    assert_eq!(
        events,
        vec![
            event(
                EventType::Put,
                kv("k", "1", 2, 3, 2),
                Some(kv("k", "0", 2, 2, 1))
            ),
            event(
                EventType::Delete,
                tombstone("k", 3),
                Some(kv("k", "0", 2, 2, 1))
            ),
        ]
    );
}

#[test]
fn events_before_the_compact_revision_are_gone() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    put(&mut store, "b", "1");
    store.compact(3).unwrap();
    assert_eq!(store.events_since(2), Err(MvccError::Compacted));
    // At the compact revision itself only what compaction kept is left, and
    // the value before it is no longer known.
    assert_eq!(
        store.events_since(3).unwrap(),
        vec![
            event(EventType::Put, kv("a", "2", 2, 3, 2), None),
            event(EventType::Put, kv("b", "1", 4, 4, 1), None),
        ]
    );
    assert_eq!(
        store.events_since(4).unwrap(),
        vec![event(EventType::Put, kv("b", "1", 4, 4, 1), None)]
    );
}

#[test]
fn events_after_the_compact_revision_keep_their_previous_value() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    store.compact(2).unwrap();
    put(&mut store, "a", "2");
    let events = store.events_since(3).unwrap();
    assert_eq!(events[0].prev_kv, Some(kv("a", "1", 2, 2, 1)));
}

#[test]
fn events_in_a_window_are_the_matching_slice_of_events_since() {
    let mut store = KvStore::new();
    for value in ["1", "2", "3", "4"] {
        put(&mut store, "a", value);
    }
    let all = store.events_since(2).unwrap();
    assert_eq!(store.events_in(3..=4).unwrap(), all[1..3].to_vec());
    assert_eq!(store.events_in(5..=i64::MAX).unwrap(), all[3..].to_vec());
    let (from, through) = (4, 3);
    assert!(store.events_in(from..=through).unwrap().is_empty());
}
