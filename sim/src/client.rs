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
use detcd::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use detcd::pb::etcdserverpb::request_op::Request as RequestOpKind;
use detcd::pb::etcdserverpb::response_op::Response as ResponseOpKind;
use detcd::pb::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, DeleteRangeResponse, HashKvRequest,
    HashKvResponse, HashRequest, LeaseLeasesRequest, Member, MemberAddRequest, MemberListRequest,
    MemberPromoteRequest, MemberRemoveRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
use detcd::pb::mvccpb::KeyValue;
use tonic::transport::Channel;
use tonic::Code;

use crate::history::{
    self, Comparison, Input, KeyRange, Output, RangeOutcome, RangeQuery, Relation, Request,
    Response, Versioned,
};

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
                call(kv.range(request)).await.map(|response| Output::Get {
                    kv: response.kvs.first().map(versioned),
                    revision: revision(&response.header),
                })
            }
            Input::Put { key, value } => {
                let request = PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                };
                call(kv.put(request)).await.map(|response| Output::Put {
                    revision: revision(&response.header),
                })
            }
            Input::Delete { key } => {
                let request = DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                };
                call(kv.delete_range(request))
                    .await
                    .map(|response| Output::Delete {
                        deleted: response.deleted,
                        revision: revision(&response.header),
                    })
            }
            Input::CompareAndPut {
                key,
                expected_mod_revision,
                value,
            } => {
                let request = compare_and_put(key, *expected_mod_revision, value);
                call(kv.txn(request)).await.map(|response| {
                    let current = response
                        .responses
                        .first()
                        .and_then(|op| match &op.response {
                            Some(ResponseOpKind::ResponseRange(range)) => {
                                range.kvs.first().map(versioned)
                            }
                            _ => None,
                        });
                    Output::CompareAndPut {
                        succeeded: response.succeeded,
                        current,
                        revision: revision(&response.header),
                    }
                })
            }
            Input::Request { request } => execute_request(kv, request).await,
            Input::Compact { revision: target } => {
                let request = CompactionRequest {
                    revision: *target,
                    physical: false,
                };
                call(kv.compact(request))
                    .await
                    .map(|response| Output::Compacted {
                        revision: revision(&response.header),
                    })
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

    /// `Maintenance.Hash`: detcd's hash of its whole state (every retained revision, the
    /// deletes the last compaction dropped, leases, auth).
    pub async fn hash(&self) -> Result<u32, String> {
        let mut maintenance = within(MaintenanceClient::connect(self.url.clone())).await?;
        Ok(within(maintenance.hash(HashRequest {}))
            .await?
            .into_inner()
            .hash)
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

/// A failed call: the status code (none for a client timeout) and the message.
type CallError = (Option<Code>, String);

async fn call<T>(
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    match madsim::time::timeout(REQUEST_TIMEOUT, future).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err((Some(status.code()), status.message().to_string())),
        Err(_) => Err((None, "client timeout".to_string())),
    }
}

fn revision(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

/// Sends a general request through the API call etcdctl would use for it.
async fn execute_request(
    kv: &mut KvClient<Channel>,
    request: &Request,
) -> Result<Output, CallError> {
    let (response, header) = match request {
        Request::Range(query) => {
            let response = call(kv.range(range_request(query))).await?;
            (Response::Range(range_outcome(&response)), response.header)
        }
        Request::Put { .. } => {
            let Some(RequestOpKind::RequestPut(put)) = request_op(request).request else {
                unreachable!("a put is a put")
            };
            let response = call(kv.put(put)).await?;
            (
                Response::Put {
                    prev: response.prev_kv.as_ref().map(versioned),
                },
                response.header,
            )
        }
        Request::DeleteRange { .. } => {
            let Some(RequestOpKind::RequestDeleteRange(delete)) = request_op(request).request
            else {
                unreachable!("a delete is a delete")
            };
            let response = call(kv.delete_range(delete)).await?;
            (delete_outcome(&response), response.header)
        }
        Request::Txn { .. } => {
            let Some(RequestOpKind::RequestTxn(txn)) = request_op(request).request else {
                unreachable!("a txn is a txn")
            };
            let response = call(kv.txn(txn)).await?;
            (txn_outcome(&response), response.header)
        }
    };
    Ok(Output::Response {
        response,
        revision: revision(&header),
    })
}

fn key_range(range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    (
        range.key.clone().into_bytes(),
        range.range_end.clone().unwrap_or_default().into_bytes(),
    )
}

fn range_request(query: &RangeQuery) -> RangeRequest {
    let (key, range_end) = key_range(&query.range);
    RangeRequest {
        key,
        range_end,
        limit: query.limit,
        revision: query.revision,
        serializable: query.serializable,
        count_only: query.count_only,
        sort_order: if query.descending {
            SortOrder::Descend as i32
        } else {
            SortOrder::None as i32
        },
        sort_target: SortTarget::Key as i32,
        ..Default::default()
    }
}

/// The request as one op of a txn (a top-level request is built the same way).
fn request_op(request: &Request) -> RequestOp {
    let kind = match request {
        Request::Range(query) => RequestOpKind::RequestRange(range_request(query)),
        Request::Put {
            key,
            value,
            prev_kv,
            ignore_lease,
        } => RequestOpKind::RequestPut(PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            prev_kv: *prev_kv,
            ignore_lease: *ignore_lease,
            ..Default::default()
        }),
        Request::DeleteRange { range, prev_kv } => {
            let (key, range_end) = key_range(range);
            RequestOpKind::RequestDeleteRange(DeleteRangeRequest {
                key,
                range_end,
                prev_kv: *prev_kv,
            })
        }
        Request::Txn {
            compares,
            success,
            failure,
        } => RequestOpKind::RequestTxn(TxnRequest {
            compare: compares.iter().map(compare).collect(),
            success: success.iter().map(request_op).collect(),
            failure: failure.iter().map(request_op).collect(),
        }),
    };
    RequestOp {
        request: Some(kind),
    }
}

fn compare(comparison: &Comparison) -> Compare {
    let (target, target_union) = match &comparison.target {
        history::CompareTarget::ModRevision(revision) => {
            (CompareTarget::Mod, TargetUnion::ModRevision(*revision))
        }
        history::CompareTarget::Value(value) => (
            CompareTarget::Value,
            TargetUnion::Value(value.clone().into_bytes()),
        ),
    };
    let result = match comparison.relation {
        Relation::Equal => CompareResult::Equal,
        Relation::NotEqual => CompareResult::NotEqual,
        Relation::Less => CompareResult::Less,
        Relation::Greater => CompareResult::Greater,
    };
    Compare {
        result: result as i32,
        target: target as i32,
        key: comparison.key.clone().into_bytes(),
        target_union: Some(target_union),
        range_end: Vec::new(),
    }
}

fn keyed(kvs: &[KeyValue]) -> Vec<(String, Versioned)> {
    kvs.iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), versioned(kv)))
        .collect()
}

fn range_outcome(response: &RangeResponse) -> RangeOutcome {
    RangeOutcome {
        kvs: keyed(&response.kvs),
        count: response.count,
        more: response.more,
    }
}

fn delete_outcome(response: &DeleteRangeResponse) -> Response {
    Response::DeleteRange {
        deleted: response.deleted,
        prev: keyed(&response.prev_kvs),
    }
}

fn txn_outcome(response: &TxnResponse) -> Response {
    Response::Txn {
        succeeded: response.succeeded,
        responses: response
            .responses
            .iter()
            .filter_map(|op| {
                Some(match op.response.as_ref()? {
                    ResponseOpKind::ResponseRange(range) => Response::Range(range_outcome(range)),
                    ResponseOpKind::ResponsePut(put) => Response::Put {
                        prev: put.prev_kv.as_ref().map(versioned),
                    },
                    ResponseOpKind::ResponseDeleteRange(delete) => delete_outcome(delete),
                    ResponseOpKind::ResponseTxn(txn) => txn_outcome(txn),
                })
            })
            .collect(),
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
