//! `etcdserverpb.Watch`: the gRPC side of a watch stream. Requests are handed to the server's
//! stream task (`server::watchable`), which answers through a bounded queue; this module only
//! adapts the two streams and turns a server stop into etcd's error.

use std::future::ready;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::requester::requester;
use crate::api::status::to_status;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{WatchRequest, WatchResponse};
use crate::server::watchable::{serve_stream, StreamEnd, RESPONSES_QUEUED_MAX};
use crate::server::{EtcdServer, ServerError};

pub struct WatchService {
    server: Arc<EtcdServer>,
}

impl WatchService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        WatchService { server }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let requester = requester(&self.server, &request)?;
        // A receive error (the client reset the stream) ends the stream like a close.
        let requests = request
            .into_inner()
            .take_while(|request| ready(request.is_ok()))
            .filter_map(|request| ready(request.ok()));
        let (responses, queued) = mpsc::channel(RESPONSES_QUEUED_MAX);
        let (ended, end) = oneshot::channel();
        let server = self.server.clone();
        tokio::spawn(async move {
            let _ =
                ended.send(serve_stream(&server, requester, Box::pin(requests), responses).await);
        });
        let stopped = futures::stream::once(end).filter_map(|end| {
            ready(match end {
                Ok(StreamEnd::ServerStopped) => Some(Err(to_status(ServerError::Stopped))),
                Ok(StreamEnd::ClientGone) | Err(_) => None,
            })
        });
        let stream = ReceiverStream::new(queued).map(Ok).chain(stopped);
        Ok(Response::new(Box::pin(stream)))
    }
}
