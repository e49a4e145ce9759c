//! `etcdserverpb.Lease` through the proxy. Keep-alive streams are piped to the cluster one for
//! one; when the member behind one fails, the pipe is re-opened on the next endpoint and the
//! client's stream carries on (a keep-alive lost in between is sent again by the client within
//! a third of the TTL, as it would be after any lost answer).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::upstream::{endpoint_failed, request, Retry, RESPONSE_BYTES_MAX};
use super::{forward, Shared};
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

/// Keep-alives in flight on one stream, each way.
const KEEP_ALIVE_QUEUE: usize = 16;

pub struct LeaseProxy {
    shared: Arc<Shared>,
}

impl LeaseProxy {
    pub fn new(shared: Arc<Shared>) -> LeaseProxy {
        LeaseProxy { shared }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseProxy {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.shared.writable()?;
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            LeaseClient,
            lease_grant
        )
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.shared.writable()?;
        // Revoking twice answers "lease not found" the second time: not safe to resend blindly.
        forward!(
            self.shared,
            request,
            Retry::IfNotSent,
            LeaseClient,
            lease_revoke
        )
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        self.shared.writable()?;
        let metadata = request.metadata().clone();
        let (sender, receiver) = mpsc::channel(KEEP_ALIVE_QUEUE);
        tokio::spawn(pipe_keep_alives(
            self.shared.clone(),
            metadata,
            request.into_inner(),
            sender,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        forward!(
            self.shared,
            request,
            Retry::Always,
            LeaseClient,
            lease_time_to_live
        )
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        forward!(
            self.shared,
            request,
            Retry::Always,
            LeaseClient,
            lease_leases
        )
    }
}

/// How one upstream keep-alive stream ended.
enum PipeEnd {
    /// The client went away, or the cluster answered with an error for the client: done.
    Done,
    /// The member failed: open the stream again elsewhere.
    EndpointFailed,
}

async fn pipe_keep_alives(
    shared: Arc<Shared>,
    metadata: MetadataMap,
    mut incoming: Streaming<LeaseKeepAliveRequest>,
    client: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) {
    loop {
        let picked = shared.upstream.pick();
        let (requests, request_stream) = mpsc::channel(KEEP_ALIVE_QUEUE);
        let opened = LeaseClient::new(picked.channel)
            .max_decoding_message_size(RESPONSE_BYTES_MAX)
            .lease_keep_alive(request(&metadata, ReceiverStream::new(request_stream)))
            .await;
        let end = match opened {
            Ok(responses) => {
                pipe_one(&mut incoming, &requests, responses.into_inner(), &client).await
            }
            Err(status) if endpoint_failed(&status) => PipeEnd::EndpointFailed,
            Err(status) => {
                let _ = client.send(Err(status)).await;
                PipeEnd::Done
            }
        };
        match end {
            PipeEnd::Done => return,
            PipeEnd::EndpointFailed => {
                shared
                    .upstream
                    .failed(picked.index, &"lease keep-alive stream failed");
                if shared.upstream.len() == 1 {
                    // Nowhere else to go: give the member a moment to come back.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn pipe_one(
    incoming: &mut Streaming<LeaseKeepAliveRequest>,
    requests: &mpsc::Sender<LeaseKeepAliveRequest>,
    mut responses: Streaming<LeaseKeepAliveResponse>,
    client: &mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) -> PipeEnd {
    loop {
        tokio::select! {
            biased;
            () = client.closed() => return PipeEnd::Done,
            request = incoming.message() => match request {
                Ok(Some(request)) => {
                    if requests.send(request).await.is_err() {
                        return PipeEnd::EndpointFailed;
                    }
                }
                Ok(None) | Err(_) => return PipeEnd::Done,
            },
            response = responses.message() => match response {
                Ok(Some(response)) => {
                    if client.send(Ok(response)).await.is_err() {
                        return PipeEnd::Done;
                    }
                }
                Ok(None) => return PipeEnd::EndpointFailed,
                Err(status) if endpoint_failed(&status) || status.code() == tonic::Code::Unknown => {
                    return PipeEnd::EndpointFailed
                }
                Err(status) => {
                    let _ = client.send(Err(status)).await;
                    return PipeEnd::Done;
                }
            },
        }
    }
}
