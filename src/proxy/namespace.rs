//! `--namespace`: every key the proxy sends to the cluster gets the prefix, every key it sends
//! back loses it, so clients of the proxy see a keyspace of their own (etcd's `namespace` package).

use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResponse;
use crate::pb::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse, WatchCreateRequest,
};
use crate::pb::mvccpb::KeyValue;

#[derive(Debug, Clone, Default)]
pub struct Namespace {
    prefix: Vec<u8>,
}

impl Namespace {
    pub fn new(prefix: Vec<u8>) -> Namespace {
        Namespace { prefix }
    }

    fn key(&self, key: &mut Vec<u8>) {
        if !self.prefix.is_empty() {
            key.splice(0..0, self.prefix.iter().copied());
        }
    }

    /// A `[key, range_end)` interval moved under the prefix. `range_end` "\0" (from `key` to the
    /// end of the keyspace) becomes the end of the namespace.
    fn range(&self, key: &mut Vec<u8>, range_end: &mut Vec<u8>) {
        if self.prefix.is_empty() {
            return;
        }
        self.key(key);
        if range_end.as_slice() == [0] {
            *range_end = prefix_end(&self.prefix);
        } else if !range_end.is_empty() {
            self.key(range_end);
        }
    }

    fn strip(&self, kv: &mut KeyValue) {
        if let Some(rest) = kv.key.strip_prefix(self.prefix.as_slice()) {
            kv.key = rest.to_vec();
        }
    }

    pub fn range_request(&self, request: &mut RangeRequest) {
        self.range(&mut request.key, &mut request.range_end);
    }

    pub fn put_request(&self, request: &mut PutRequest) {
        self.key(&mut request.key);
    }

    pub fn delete_request(&self, request: &mut DeleteRangeRequest) {
        self.range(&mut request.key, &mut request.range_end);
    }

    pub fn txn_request(&self, request: &mut TxnRequest) {
        for compare in &mut request.compare {
            self.range(&mut compare.key, &mut compare.range_end);
        }
        for op in request.success.iter_mut().chain(request.failure.iter_mut()) {
            match &mut op.request {
                Some(Op::RequestRange(range)) => self.range_request(range),
                Some(Op::RequestPut(put)) => self.put_request(put),
                Some(Op::RequestDeleteRange(delete)) => self.delete_request(delete),
                Some(Op::RequestTxn(txn)) => self.txn_request(txn),
                None => {}
            }
        }
    }

    pub fn watch_request(&self, request: &mut WatchCreateRequest) {
        self.range(&mut request.key, &mut request.range_end);
    }

    pub fn range_response(&self, response: &mut RangeResponse) {
        response.kvs.iter_mut().for_each(|kv| self.strip(kv));
    }

    pub fn put_response(&self, response: &mut PutResponse) {
        if let Some(kv) = &mut response.prev_kv {
            self.strip(kv);
        }
    }

    pub fn delete_response(&self, response: &mut DeleteRangeResponse) {
        response.prev_kvs.iter_mut().for_each(|kv| self.strip(kv));
    }

    pub fn txn_response(&self, response: &mut TxnResponse) {
        for op in &mut response.responses {
            match &mut op.response {
                Some(OpResponse::ResponseRange(range)) => self.range_response(range),
                Some(OpResponse::ResponsePut(put)) => self.put_response(put),
                Some(OpResponse::ResponseDeleteRange(delete)) => self.delete_response(delete),
                Some(OpResponse::ResponseTxn(txn)) => self.txn_response(txn),
                None => {}
            }
        }
    }

    /// Keys of a watch event as the client named them.
    pub fn event(&self, event: &mut crate::pb::mvccpb::Event) {
        for kv in event.kv.iter_mut().chain(event.prev_kv.iter_mut()) {
            self.strip(kv);
        }
    }
}

/// The first key after every key that starts with `prefix`; "\0" (the end of the keyspace) when
/// there is none (a prefix of all 0xff bytes).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_move_under_the_prefix() {
        let ns = Namespace::new(b"ns/".to_vec());
        let mut request = RangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            ..Default::default()
        };
        ns.range_request(&mut request);
        assert_eq!(
            (request.key.as_slice(), request.range_end.as_slice()),
            (&b"ns/a"[..], &b"ns0"[..])
        );
        let mut request = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            ..Default::default()
        };
        ns.range_request(&mut request);
        assert_eq!(request.range_end, b"ns/b");
        let mut single = RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        };
        ns.range_request(&mut single);
        assert!(single.range_end.is_empty());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), [0]);
    }

    #[test]
    fn responses_lose_the_prefix_and_an_empty_namespace_changes_nothing() {
        let ns = Namespace::new(b"ns/".to_vec());
        let mut response = RangeResponse {
            kvs: vec![KeyValue {
                key: b"ns/a".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        ns.range_response(&mut response);
        assert_eq!(response.kvs[0].key, b"a");
        let mut put = PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        Namespace::default().put_request(&mut put);
        assert_eq!(put.key, b"k");
    }
}
