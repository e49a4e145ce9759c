//! Counts gRPC calls and their bytes the way etcd's go-grpc-prometheus interceptors do
//! (`grpc_server_started_total`, `grpc_server_handled_total`, and etcd's
//! `etcd_network_client_grpc_{sent,received}_bytes_total`), as one layer over the client
//! listener's gRPC routes instead of a line in every service.
//!
//! A call is handled when its status is known: in the response headers for a call that fails
//! before answering (a trailers-only response), otherwise in the trailers after the last message.
//! A response dropped before its trailers (the client went away mid-stream) counts as `Canceled`.
//! Real network only: the simulator's gRPC carries no HTTP.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use prometheus::IntCounter;

use super::{GrpcCall, Metrics};

/// The layer: `router.layer(axum::middleware::from_fn_with_state(metrics, grpc::count))`.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let Some(call) = call_of(request.uri().path()) else {
        return next.run(request).await;
    };
    metrics.grpc_started(&call);
    let received = metrics.client_grpc_received_bytes.clone();
    let request = request.map(|body| Body::new(Counted::new(body, received, None)));
    let response = next.run(request).await;
    let outcome = match status_code(response.headers()) {
        Some(code) => {
            metrics.grpc_handled(&call, code);
            None
        }
        None => Some(Outcome {
            metrics: metrics.clone(),
            call,
        }),
    };
    let sent = metrics.client_grpc_sent_bytes.clone();
    response.map(|body| Body::new(Counted::new(body, sent, outcome)))
}

/// `/etcdserverpb.KV/Put` → the call's labels; None for a path that is not a gRPC method.
fn call_of(path: &str) -> Option<GrpcCall> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some(GrpcCall {
        kind: call_kind(service, method),
        service: service.to_string(),
        method: method.to_string(),
    })
}

/// The streaming methods of etcd's API; every other method is unary.
fn call_kind(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") => "server_stream",
        _ => "unary",
    }
}

/// gRPC status codes by number, named as Go's `codes.Code.String()` names them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The `grpc-status` in `headers` (or trailers), by name; a number outside the table is `Unknown`.
fn status_code(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?;
    let number: usize = value.to_str().ok()?.parse().ok()?;
    Some(CODE_NAMES.get(number).copied().unwrap_or("Unknown"))
}

/// A call whose status is still to come.
struct Outcome {
    metrics: Arc<Metrics>,
    call: GrpcCall,
}

/// A body that counts its data bytes and, if it carries a call's trailers, records the call.
struct Counted {
    inner: Body,
    bytes: IntCounter,
    outcome: Option<Outcome>,
}

impl Counted {
    fn new(inner: Body, bytes: IntCounter, outcome: Option<Outcome>) -> Counted {
        Counted {
            inner,
            bytes,
            outcome,
        }
    }

    fn handled(&mut self, code: &str) {
        if let Some(outcome) = self.outcome.take() {
            outcome.metrics.grpc_handled(&outcome.call, code);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    this.handled(status_code(trailers).unwrap_or("Unknown"));
                }
            }
            // The body ended without a status: not a gRPC answer etcd's clients would accept.
            Poll::Ready(None) => this.handled("Unknown"),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.handled("Canceled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_service_method_and_kind() {
        let put = call_of("/etcdserverpb.KV/Put").unwrap();
        assert_eq!(
            (put.kind, put.service.as_str(), put.method.as_str()),
            ("unary", "etcdserverpb.KV", "Put")
        );
        assert_eq!(
            call_of("/etcdserverpb.Watch/Watch").unwrap().kind,
            "bidi_stream"
        );
        assert_eq!(
            call_of("/etcdserverpb.Lease/LeaseKeepAlive").unwrap().kind,
            "bidi_stream"
        );
        assert_eq!(
            call_of("/etcdserverpb.Maintenance/Snapshot").unwrap().kind,
            "server_stream"
        );
        assert_eq!(call_of("/metrics"), None);
        assert_eq!(call_of("/a/b/c"), None);
    }

    #[test]
    fn status_codes_are_named_as_go_names_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(status_code(&headers), Some("OK"));
        headers.insert("grpc-status", "9".parse().unwrap());
        assert_eq!(status_code(&headers), Some("FailedPrecondition"));
        headers.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(status_code(&headers), Some("Unknown"));
    }
}
