//! Maintenance (etcd's `maintenance.go` server side): status, the two hashes, alarms, and the
//! backup a `Maintenance.Snapshot` streams.

use std::sync::{Arc, Mutex};

use prost::Message as _;

use crate::auth::AuthStore;
use crate::config::ETCD_API_VERSION;
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, HashKvResponse, HashResponse, StatusResponse,
};
use crate::server::alarms::Alarms;
use crate::server::apply::{self, StateMachine};
use crate::server::header::Headers;
use crate::server::propose::Proposer;
use crate::server::ServerError;

pub struct Maintenance {
    state: StateMachine,
    proposer: Arc<Proposer>,
    headers: Headers,
}

impl Maintenance {
    /// `state` is read only, never changed here: changes are the applier's.
    pub fn new(state: StateMachine, proposer: Arc<Proposer>, headers: Headers) -> Maintenance {
        Maintenance {
            state,
            proposer,
            headers,
        }
    }

    pub fn status(&self) -> StatusResponse {
        let raft = self.proposer.raft_status();
        let kv = self.state.kv.lock().unwrap();
        let db_size = kv.size_bytes() as i64;
        StatusResponse {
            header: Some(self.headers.at(kv.current_revision())),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: raft.leader_id,
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: alarm_errors(&self.state.alarms),
            db_size_in_use: db_size,
            is_learner: raft.is_learner,
        }
    }

    /// A hash of everything this member retains (Maintenance `Hash`): every retained revision,
    /// the revision counters and the leases. etcd hashes its bolt file; replicas that applied the
    /// same log hash alike here, which is what the hash is for.
    pub fn hash(&self) -> HashResponse {
        let lessor = self.state.lessor.lock().unwrap();
        let kv = self.state.kv.lock().unwrap();
        let mut state = kv.to_snapshot().encode_to_vec();
        for lease in lessor.to_snapshot() {
            state.extend_from_slice(&lease.encode_to_vec());
        }
        // etcd's hash covers its auth buckets too. (Empty while auth was never used.)
        state.extend_from_slice(&auth_snapshot(&self.state.auth));
        HashResponse {
            header: Some(self.headers.at(kv.current_revision())),
            hash: crc32fast::hash(&state),
        }
    }

    pub fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, ServerError> {
        let kv = self.state.kv.lock().unwrap();
        let (hash, compact_revision) = kv.hash_kv(revision)?;
        Ok(HashKvResponse {
            header: Some(self.headers.at(kv.current_revision())),
            hash,
            compact_revision,
        })
    }

    /// Lists the raised alarms, or raises / clears one through raft (etcd's `Alarm`).
    pub async fn alarm(&self, request: AlarmRequest) -> Result<AlarmResponse, ServerError> {
        let mut response = match request.action() {
            AlarmAction::Get => AlarmResponse {
                header: None,
                alarms: self.state.alarms.lock().unwrap().list(),
            },
            AlarmAction::Activate | AlarmAction::Deactivate => {
                self.proposer.propose_alarm(request).await?
            }
        };
        response.header = Some(self.headers.current());
        Ok(response)
    }

    /// The whole state machine now, as a backup file (etcd 3.4's format) for `Maintenance.Snapshot`.
    /// Like etcd's, it is this member's applied state, not a linearizable read.
    pub fn backup(&self) -> Vec<u8> {
        // Read before the state, so never past it; `etcdctl snapshot restore` rewrites it anyway.
        let consistent_index = self.proposer.raft_status().applied_index;
        let state = apply::state_snapshot(
            &self.state.lessor,
            &self.state.kv,
            &self.state.membership,
            &self.state.alarms,
            &self.state.auth,
        );
        crate::backup::encode(&state, consistent_index)
    }
}

fn auth_snapshot(auth: &Mutex<AuthStore>) -> Vec<u8> {
    auth.lock().unwrap().to_snapshot().encode_to_vec()
}

/// The raised alarms as etcd's Status lists them in `errors`.
fn alarm_errors(alarms: &Mutex<Alarms>) -> Vec<String> {
    alarms
        .lock()
        .unwrap()
        .list()
        .iter()
        .map(|alarm| {
            format!(
                "memberID:{} alarm:{} ",
                alarm.member_id,
                alarm_name(alarm.alarm)
            )
        })
        .collect()
}

/// etcd's name for an alarm type, as `alarm list` and Status errors print it.
fn alarm_name(alarm: i32) -> &'static str {
    AlarmType::try_from(alarm).map_or("UNKNOWN", |alarm| alarm.as_str_name())
}
