//! `etcdserverpb.Maintenance`: status, alarms (NOSPACE, raised by the quota check), hashes,
//! defragmentation (nothing to reclaim in memory), backups (`Snapshot`) and leader moves.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::api::requester::requester;
use crate::api::status::to_status;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::server::EtcdServer;

pub struct MaintenanceService {
    server: Arc<EtcdServer>,
}

impl MaintenanceService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        MaintenanceService { server }
    }

    /// etcd 3.4 keeps defragment, hashes and backups to root once auth is enabled (its
    /// `authMaintenanceServer`); status, alarms and leader moves are anyone's.
    fn check_root<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let requester = requester(&self.server, request)?;
        self.server
            .auth()
            .check_maintenance(&requester)
            .map_err(to_status)
    }
}

/// etcd's `snapshotSendBufferSize`.
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        self.server
            .maintenance()
            .alarm(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.server.maintenance().status()))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.check_root(&request)?;
        // A per-member local operation in etcd (rewrite the bolt file without its free pages).
        // detcd's store is in memory and compaction already frees what it drops, so there is
        // nothing left to reclaim: dbSize after compaction is already the defragmented size.
        Ok(Response::new(DefragmentResponse {
            header: Some(self.server.header(0)),
        }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.check_root(&request)?;
        Ok(Response::new(self.server.maintenance().hash()))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.check_root(&request)?;
        self.server
            .maintenance()
            .hash_kv(request.get_ref().revision)
            .map(Response::new)
            .map_err(to_status)
    }

    type SnapshotStream = SnapshotStream;

    /// Streams a backup of this member's state in chunks; `remaining_bytes` counts what is
    /// still to come after each chunk, so the last one says 0 and the stream ends cleanly
    /// (etcdctl copies the blobs into its file until the stream ends).
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        self.check_root(&request)?;
        let backup = self.server.maintenance().backup();
        let total = backup.len();
        let chunks: Vec<Result<SnapshotResponse, Status>> = backup
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .scan(0, |sent, chunk| {
                *sent += chunk.len();
                Some(Ok(SnapshotResponse {
                    header: Some(self.server.header(0)),
                    remaining_bytes: (total - *sent) as u64,
                    blob: chunk.to_vec(),
                }))
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.server
            .cluster()
            .move_leader(request.get_ref().target_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.server.header(0)),
        }))
    }
}
