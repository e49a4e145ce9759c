//! Splitting one large watch response into fragments (etcd's `sendFragments`), for watches
//! created with `fragment: true`.
//!
//! A response is split only if it has at least two events and its encoding reaches the limit.
//! Each fragment then takes events while it stays under the limit (but always at least one),
//! and all fragments but the last carry `fragment: true`, so the client joins them back into
//! one revision-atomic response.

use prost::Message as _;

use crate::pb::etcdserverpb::WatchResponse;

pub fn fragments(response: WatchResponse, bytes_max: usize) -> Vec<WatchResponse> {
    assert!(bytes_max > 0, "a fragment limit must be positive");
    if response.events.len() < 2 || response.encoded_len() < bytes_max {
        return vec![response];
    }
    let mut pieces = Vec::new();
    let mut events = response.events.into_iter().peekable();
    let empty = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..response
    };
    while events.peek().is_some() {
        let mut piece = empty.clone();
        while let Some(event) = events.peek() {
            piece.events.push(event.clone());
            if piece.events.len() > 1 && piece.encoded_len() >= bytes_max {
                piece.events.pop();
                break;
            }
            events.next();
        }
        piece.fragment = events.peek().is_some();
        pieces.push(piece);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::mvccpb::{Event, KeyValue};

    fn response_with_values(sizes: &[usize]) -> WatchResponse {
        WatchResponse {
            watch_id: 7,
            events: sizes
                .iter()
                .map(|&size| Event {
                    kv: Some(KeyValue {
                        key: b"k".to_vec(),
                        value: vec![b'v'; size],
                        mod_revision: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_response_under_the_limit_is_sent_whole() {
        let response = response_with_values(&[10, 10, 10]);
        assert_eq!(fragments(response.clone(), 1000), vec![response]);
    }

    #[test]
    fn a_single_event_is_never_split_however_large() {
        let response = response_with_values(&[5000]);
        assert_eq!(fragments(response.clone(), 100), vec![response]);
    }

    #[test]
    fn fragments_stay_under_the_limit_and_only_the_last_is_final() {
        let response = response_with_values(&[100, 100, 100, 100, 100]);
        let pieces = fragments(response.clone(), 250);
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(piece.encoded_len() < 250 || piece.events.len() == 1);
            assert_eq!(piece.watch_id, 7);
        }
        let flags: Vec<bool> = pieces.iter().map(|p| p.fragment).collect();
        assert!(flags[..flags.len() - 1].iter().all(|&f| f));
        assert!(!flags[flags.len() - 1]);
        let joined: Vec<Event> = pieces.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, response.events);
    }

    #[test]
    fn an_event_larger_than_the_limit_gets_a_fragment_of_its_own() {
        let response = response_with_values(&[10, 500, 10]);
        let pieces = fragments(response, 200);
        let counts: Vec<usize> = pieces.iter().map(|p| p.events.len()).collect();
        assert_eq!(counts, [1, 1, 1]);
    }
}
