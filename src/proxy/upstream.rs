//! The proxy's side of the cluster: one lazily connected channel per endpoint and the endpoint in
//! use. When that endpoint fails, the proxy moves to the next one (clientv3's failover, done
//! here so that the proxy's clients never see the member behind it change).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::tls::Dialer;

/// A dead endpoint (SIGKILL: connection refused) fails at once; an unreachable one within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings find a connection whose member vanished without a reset (a power loss).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// etcd clients accept responses of any size the server sends (clientv3's default is MaxInt32).
pub const RESPONSE_BYTES_MAX: usize = i32::MAX as usize;

/// Metadata a client sends that the cluster must see too (auth tokens).
const FORWARDED_METADATA: [&str; 2] = ["token", "authorization"];

/// Whether a call may be sent again to another endpoint after it failed on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads: sending twice changes nothing.
    Always,
    /// Writes: only when the first endpoint never received it (the connection could not be
    /// made), as clientv3 retries mutations only when it knows they were not sent.
    IfNotSent,
}

pub struct Upstream {
    endpoints: Vec<(String, Channel)>,
    current: AtomicUsize,
}

/// An endpoint picked for one call or stream; report its failure with [`Upstream::failed`].
#[derive(Clone)]
pub struct Picked {
    pub index: usize,
    pub channel: Channel,
}

impl Upstream {
    /// `dialer` opens the `https://` endpoints.
    pub fn new(urls: &[String], dialer: &Dialer) -> Result<Upstream, String> {
        assert!(!urls.is_empty(), "the flags guarantee an endpoint");
        let endpoints = urls
            .iter()
            .map(|url| {
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|e| format!("invalid endpoint {url:?}: {e}"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                    .keep_alive_while_idle(true);
                Ok((url.clone(), dialer.connect_lazy(endpoint)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(Upstream {
            endpoints,
            current: AtomicUsize::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// The endpoint now in use.
    pub fn pick(&self) -> Picked {
        let index = self.current.load(Ordering::SeqCst);
        Picked {
            index,
            channel: self.endpoints[index].1.clone(),
        }
    }

    /// The URL of the endpoint now in use.
    pub fn current_url(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::SeqCst)].0
    }

    /// `index` failed: move on to the next endpoint, unless another caller already did.
    pub fn failed(&self, index: usize, error: &dyn std::fmt::Display) {
        let next = (index + 1) % self.endpoints.len();
        if self
            .current
            .compare_exchange(index, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::warn!(
                failed = %self.endpoints[index].0,
                next = %self.endpoints[next].0,
                %error,
                "endpoint failed; switching to the next one"
            );
        }
    }

    /// Sends `message` with `call`, moving to the next endpoint while the cluster is unreachable
    /// through the current one and `retry` allows sending it again.
    pub async fn call<M, T, F, Fut>(
        &self,
        retry: Retry,
        metadata: &MetadataMap,
        message: M,
        call: F,
    ) -> Result<T, Status>
    where
        M: Clone,
        F: Fn(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let mut attempts = self.endpoints.len();
        loop {
            let picked = self.pick();
            let answer = call(picked.channel, request(metadata, message.clone())).await;
            match answer.map_err(broken_connection) {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if endpoint_failed(&status) => {
                    self.failed(picked.index, &status);
                    attempts -= 1;
                    let again = retry == Retry::Always || not_sent(&status);
                    if attempts == 0 || !again {
                        return Err(status);
                    }
                }
                Err(status) => return Err(status),
            }
        }
    }
}

/// A request to the cluster carrying the client's forwarded metadata.
pub fn request<M>(metadata: &MetadataMap, message: M) -> Request<M> {
    let mut request = Request::new(message);
    for key in FORWARDED_METADATA {
        if let Some(value) = metadata.get(key) {
            request.metadata_mut().insert(key, value.clone());
        }
    }
    request
}

/// tonic reports a connection that broke off under a call (the member's TLS refused the proxy's
/// certificate; a reset) as Unknown "transport error", with the reason only in its causes. To
/// the proxy that is the endpoint failing, and the client should read the reason.
pub fn broken_connection(status: Status) -> Status {
    use std::error::Error;
    match status.source() {
        Some(cause) if status.code() == Code::Unknown => {
            Status::unavailable(crate::tls::error_chain(cause))
        }
        _ => status,
    }
}

/// The member behind the endpoint cannot serve (gone, no leader, cut off): try another.
pub fn endpoint_failed(status: &Status) -> bool {
    status.code() == Code::Unavailable
}

/// tonic reports a connection that could not be made as Unavailable with the connector's error,
/// before any byte of the request left.
fn not_sent(status: &Status) -> bool {
    status.message().contains("connect error")
}
