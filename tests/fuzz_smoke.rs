//! Runs every fuzz entry point (`detcd::fuzzing`) over a seeded corpus on the stable toolchain,
//! so each `scripts/test` fuzzes a little: random bytes, and valid inputs with bits flipped,
//! bytes dropped, inserted and cut short. libFuzzer (`fuzz/`) goes much further by hand.
#![cfg(not(madsim))]

use detcd::fuzzing;
use detcd::pb::etcdserverpb::request_op::Request;
use detcd::pb::etcdserverpb::{compare, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Inputs per target per run; small enough for CI, large enough to reach odd corners.
const CASES: usize = 3000;

fn mutate(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    let mut data = valid.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if data.is_empty() {
            break;
        }
        let at = rng.random_range(0..data.len());
        match rng.random_range(0..5) {
            0 => data[at] ^= 1 << rng.random_range(0..8),
            1 => data[at] = rng.random(),
            2 => {
                data.remove(at);
            }
            3 => data.insert(at, rng.random()),
            _ => data.truncate(at),
        }
    }
    data
}

fn corpus(seed: u64, valid: &[Vec<u8>]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..CASES).map(move |case| {
        if case % 3 == 0 || valid.is_empty() {
            let len = rng.random_range(0..256);
            (0..len).map(|_| rng.random()).collect()
        } else {
            let base = &valid[rng.random_range(0..valid.len())];
            mutate(&mut rng, base)
        }
    })
}

#[test]
fn wal_replay_survives_damaged_segments() {
    let valid = vec![fuzzing::valid_wal_segment()];
    for data in corpus(1, &valid) {
        fuzzing::wal_replay(&data);
    }
}

#[test]
fn snapshot_loading_survives_damaged_files() {
    for data in corpus(2, &[]) {
        fuzzing::snapshot_file(&data);
    }
}

#[test]
fn backup_reading_survives_damaged_files() {
    let valid = vec![fuzzing::valid_backup_file()];
    for data in corpus(5, &valid) {
        fuzzing::backup_file(&data);
    }
}

#[test]
fn kv_requests_survive_mutated_encodings() {
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"a".to_vec(),
            target_union: Some(compare::TargetUnion::Version(1)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: b"b".to_vec(),
                value: b"v".to_vec(),
                prev_kv: true,
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b"a".to_vec(),
                range_end: vec![0],
                limit: 2,
                revision: 4,
                sort_order: 2,
                sort_target: 4,
                ..Default::default()
            })),
        }],
    };
    let range = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        revision: 5,
        min_mod_revision: 2,
        ..Default::default()
    };
    let valid = vec![txn.encode_to_vec(), range.encode_to_vec()];
    for data in corpus(3, &valid) {
        fuzzing::kv_request(&data);
    }
}

#[test]
fn flag_parsing_survives_arbitrary_arguments() {
    let valid = vec![b"--name=n1\0--listen-client-urls=http://127.0.0.1:2379\0--election-timeout=500\0--initial-cluster=n1=http://127.0.0.1:2380".to_vec()];
    for data in corpus(4, &valid) {
        fuzzing::flags(&data);
    }
}
