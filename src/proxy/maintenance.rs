//! `etcdserverpb.Maintenance` through the proxy: forwarded to the member the proxy uses, as
//! etcd's proxy does (Status, Hash and the rest describe that member).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::upstream::{Retry, RESPONSE_BYTES_MAX};
use super::{forward, Shared};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};

pub struct MaintenanceProxy {
    shared: Arc<Shared>,
}

impl MaintenanceProxy {
    pub fn new(shared: Arc<Shared>) -> MaintenanceProxy {
        MaintenanceProxy { shared }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceProxy {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        if request.get_ref().action() == AlarmAction::Get {
            forward!(
                self.shared,
                request,
                Retry::Always,
                MaintenanceClient,
                alarm
            )
        } else {
            self.shared.writable()?;
            forward!(
                self.shared,
                request,
                Retry::IfNotSent,
                MaintenanceClient,
                alarm
            )
        }
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        forward!(
            self.shared,
            request,
            Retry::Always,
            MaintenanceClient,
            status
        )
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::Always,
            MaintenanceClient,
            defragment
        )
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        forward!(self.shared, request, Retry::Always, MaintenanceClient, hash)
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        forward!(
            self.shared,
            request,
            Retry::Always,
            MaintenanceClient,
            hash_kv
        )
    }

    type SnapshotStream = SnapshotStream;

    /// A snapshot comes from one member: one that fails midway fails the download.
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let chunks = forward!(
            self.shared,
            request,
            Retry::Always,
            MaintenanceClient,
            snapshot
        )?;
        Ok(Response::new(chunks.into_inner().boxed()))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            MaintenanceClient,
            move_leader
        )
    }
}
