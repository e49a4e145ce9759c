//! A simulated etcd client: the real gRPC API over madsim-tonic, one connection at a time to one
//! member, turning every response or error into a history [`Output`]. An error whose outcome an
//! etcd client cannot know (timeout, unavailable, connection lost mid-request) becomes
//! [`Output::Indeterminate`] for writes; a read that fails had no effect and is [`Output::Failed`].

use std::time::Duration;

use detcd::pb::etcdserverpb::cluster_client::ClusterClient;
use detcd::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use detcd::pb::etcdserverpb::kv_client::KvClient;
use detcd::pb::etcdserverpb::lease_client::LeaseClient;
use detcd::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use detcd::pb::etcdserverpb::request_op::Request as RequestOpKind;
use detcd::pb::etcdserverpb::response_op::Response as ResponseOpKind;
use detcd::pb::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, HashKvRequest, HashKvResponse,
    LeaseLeasesRequest, Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, PutRequest, RangeRequest, RequestOp, StatusRequest, StatusResponse,
    TxnRequest,
};
use detcd::pb::mvccpb::KeyValue;
use tonic::transport::Channel;
use tonic::Code;

use crate::history::{Input, Output, Versioned};

/// How long a client waits for any one request before giving up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client bound to one member's client URL; reconnects after errors.
pub struct Client {
    url: String,
    kv: Option<KvClient<Channel>>,
}

fn versioned(kv: &KeyValue) -> Versioned {
    Versioned {
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        mod_revision: kv.mod_revision,
    }
}

/// Codes after which a write certainly did not happen.
fn is_definite_failure(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::OutOfRange
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::Unimplemented
            | Code::PermissionDenied
    )
}

async fn within<T, E: std::fmt::Display>(
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match madsim::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("client timeout".to_string()),
    }
}

impl Client {
    pub fn new(url: String) -> Client {
        Client { url, kv: None }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn kv(&mut self) -> Result<&mut KvClient<Channel>, String> {
        if self.kv.is_none() {
            let kv = within(KvClient::connect(self.url.clone())).await?;
            self.kv = Some(kv);
        }
        Ok(self.kv.as_mut().expect("just connected"))
    }

    /// Runs one workload operation. Never panics on server behaviour: everything is an Output.
    pub async fn execute(&mut self, input: &Input) -> Output {
        let is_write = input.is_write();
        let kv = match self.kv().await {
            Ok(kv) => kv,
            // Nothing was sent: the operation certainly had no effect.
            Err(error) => return Output::Failed { error },
        };
        let result = match input {
            Input::Get { key } => {
                let request = RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                };
                match madsim::time::timeout(REQUEST_TIMEOUT, kv.range(request)).await {
                    Ok(Ok(response)) => {
                        let response = response.into_inner();
                        Ok(Output::Get {
                            kv: response.kvs.first().map(versioned),
                            revision: response.header.map_or(0, |h| h.revision),
                        })
                    }
                    Ok(Err(status)) => Err((Some(status.code()), status.message().to_string())),
                    Err(_) => Err((None, "client timeout".to_string())),
                }
            }
            Input::Put { key, value } => {
                let request = PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                };
                match madsim::time::timeout(REQUEST_TIMEOUT, kv.put(request)).await {
                    Ok(Ok(response)) => Ok(Output::Put {
                        revision: response.into_inner().header.map_or(0, |h| h.revision),
                    }),
                    Ok(Err(status)) => Err((Some(status.code()), status.message().to_string())),
                    Err(_) => Err((None, "client timeout".to_string())),
                }
            }
            Input::Delete { key } => {
                let request = DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                };
                match madsim::time::timeout(REQUEST_TIMEOUT, kv.delete_range(request)).await {
                    Ok(Ok(response)) => {
                        let response = response.into_inner();
                        Ok(Output::Delete {
                            deleted: response.deleted,
                            revision: response.header.map_or(0, |h| h.revision),
                        })
                    }
                    Ok(Err(status)) => Err((Some(status.code()), status.message().to_string())),
                    Err(_) => Err((None, "client timeout".to_string())),
                }
            }
            Input::CompareAndPut {
                key,
                expected_mod_revision,
                value,
            } => {
                let request = compare_and_put(key, *expected_mod_revision, value);
                match madsim::time::timeout(REQUEST_TIMEOUT, kv.txn(request)).await {
                    Ok(Ok(response)) => {
                        let response = response.into_inner();
                        let current =
                            response
                                .responses
                                .first()
                                .and_then(|op| match &op.response {
                                    Some(ResponseOpKind::ResponseRange(range)) => {
                                        range.kvs.first().map(versioned)
                                    }
                                    _ => None,
                                });
                        Ok(Output::CompareAndPut {
                            succeeded: response.succeeded,
                            current,
                            revision: response.header.map_or(0, |h| h.revision),
                        })
                    }
                    Ok(Err(status)) => Err((Some(status.code()), status.message().to_string())),
                    Err(_) => Err((None, "client timeout".to_string())),
                }
            }
        };
        match result {
            Ok(output) => output,
            Err((code, error)) => {
                // The connection may be broken: start over with the next request.
                self.kv = None;
                let definite = code.is_some_and(is_definite_failure);
                if is_write && !definite {
                    Output::Indeterminate { error }
                } else {
                    Output::Failed { error }
                }
            }
        }
    }

    /// A linearizable read of `key` at `revision` (0 = latest), for the after-heal checks.
    pub async fn get_at(&mut self, key: &str, revision: i64) -> Result<Option<Versioned>, String> {
        let request = RangeRequest {
            key: key.as_bytes().to_vec(),
            revision,
            ..Default::default()
        };
        let kv = self.kv().await?;
        let result = within(kv.range(request)).await;
        if result.is_err() {
            self.kv = None;
        }
        Ok(result?.into_inner().kvs.first().map(versioned))
    }

    pub async fn compact(&mut self, revision: i64) -> Result<(), String> {
        let kv = self.kv().await?;
        let result = within(kv.compact(CompactionRequest {
            revision,
            physical: false,
        }))
        .await;
        if result.is_err() {
            self.kv = None;
        }
        result.map(|_| ())
    }

    pub async fn status(&self) -> Result<StatusResponse, String> {
        let mut maintenance = within(MaintenanceClient::connect(self.url.clone())).await?;
        Ok(within(maintenance.status(StatusRequest {}))
            .await?
            .into_inner())
    }

    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, String> {
        let mut maintenance = within(MaintenanceClient::connect(self.url.clone())).await?;
        Ok(within(maintenance.hash_kv(HashKvRequest { revision }))
            .await?
            .into_inner())
    }
}

/// Membership changes, as `etcdctl member …` sends them.
impl Client {
    async fn cluster(&self) -> Result<ClusterClient<Channel>, String> {
        within(ClusterClient::connect(self.url.clone())).await
    }

    /// The member list as this member applied it so far (`etcdctl member list`).
    pub async fn member_list(&self) -> Result<Vec<Member>, String> {
        let mut cluster = self.cluster().await?;
        Ok(within(cluster.member_list(MemberListRequest {}))
            .await?
            .into_inner()
            .members)
    }

    /// The ids of the leases this member knows, in id order (`etcdctl lease list`).
    pub async fn lease_ids(&self) -> Result<Vec<i64>, String> {
        let mut lease = within(LeaseClient::connect(self.url.clone())).await?;
        let mut ids: Vec<i64> = within(lease.lease_leases(LeaseLeasesRequest {}))
            .await?
            .into_inner()
            .leases
            .iter()
            .map(|lease| lease.id)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The member list as of a linearizable read on this member: the read waits until the member
    /// has applied everything committed before it, so the list has every membership change
    /// committed before the call (a plain `member list` is whatever the member applied so far).
    pub async fn fresh_member_list(&mut self) -> Result<Vec<Member>, String> {
        self.get_at("membership-barrier", 0).await?;
        self.member_list().await
    }

    /// Adds a member with `peer_url`; returns it with the id the cluster gave it.
    pub async fn member_add(&self, peer_url: &str, is_learner: bool) -> Result<Member, String> {
        let mut cluster = self.cluster().await?;
        let request = MemberAddRequest {
            peer_ur_ls: vec![peer_url.to_string()],
            is_learner,
        };
        within(cluster.member_add(request))
            .await?
            .into_inner()
            .member
            .ok_or_else(|| "member add answered without the member".to_string())
    }

    pub async fn member_remove(&self, id: u64) -> Result<(), String> {
        let mut cluster = self.cluster().await?;
        within(cluster.member_remove(MemberRemoveRequest { id })).await?;
        Ok(())
    }

    pub async fn member_promote(&self, id: u64) -> Result<(), String> {
        let mut cluster = self.cluster().await?;
        within(cluster.member_promote(MemberPromoteRequest { id })).await?;
        Ok(())
    }
}

fn compare_and_put(key: &str, expected_mod_revision: i64, value: &str) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::ModRevision(expected_mod_revision)),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp {
            request: Some(RequestOpKind::RequestPut(PutRequest {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(RequestOpKind::RequestRange(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })),
        }],
    }
}
