//! Outgoing gRPC channels: to peers (raft messages, the member list at join) and to the leader's
//! client URL (lease forwarding). An `https://` URL gets a TLS connection made with the side's
//! certificate; in the simulator every URL gets madsim's plain channel.

use tonic::transport::{Channel, Endpoint};

#[cfg(not(madsim))]
use std::sync::Arc;

/// Opens channels to URLs of one side (peer or client).
#[derive(Clone, Default)]
pub struct Dialer {
    /// For `https://` URLs; `None` when this side has no TLS.
    #[cfg(not(madsim))]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(not(madsim))]
        let tls = self.tls.is_some();
        #[cfg(madsim)]
        let tls = false;
        f.debug_struct("Dialer").field("tls", &tls).finish()
    }
}

/// The member's two dialers.
#[derive(Clone, Debug, Default)]
pub struct Dialers {
    pub peer: Dialer,
    pub client: Dialer,
}

impl Dialer {
    #[cfg(not(madsim))]
    pub fn with_tls(tls: Arc<rustls::ClientConfig>) -> Dialer {
        Dialer { tls: Some(tls) }
    }

    /// Connects to `url`; the error says why, down to the TLS reason.
    pub async fn connect(&self, url: &str) -> Result<Channel, String> {
        let endpoint =
            Endpoint::from_shared(url.to_string()).map_err(|e| super::error_chain(&e))?;
        #[cfg(not(madsim))]
        if let Some(tls) = self.tls_for(&endpoint)? {
            return endpoint
                .connect_with_connector(connector(tls))
                .await
                .map_err(|e| super::error_chain(&e));
        }
        endpoint.connect().await.map_err(|e| super::error_chain(&e))
    }

    /// A channel to `endpoint` that connects on first use (and again after a failure), over TLS
    /// for an `https://` URL.
    #[cfg(not(madsim))]
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Result<Channel, String> {
        Ok(match self.tls_for(&endpoint)? {
            Some(tls) => endpoint.connect_with_connector_lazy(connector(tls)),
            None => endpoint.connect_lazy(),
        })
    }

    /// The TLS configuration an `https://` endpoint is dialed with (`None` for `http://`); an
    /// error if this side has none.
    #[cfg(not(madsim))]
    fn tls_for(&self, endpoint: &Endpoint) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(None);
        }
        match &self.tls {
            Some(tls) => Ok(Some(tls.clone())),
            None => Err(format!(
                "{}: an https URL, but this side has no TLS configured",
                endpoint.uri()
            )),
        }
    }
}

/// TCP, then TLS with the URL's host as the server name, then HTTP/2 (negotiated by ALPN).
#[cfg(not(madsim))]
fn connector(
    tls: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    axum::http::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: axum::http::Uri| {
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        async move {
            let invalid = |why: &str| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri}: {why}"))
            };
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
            let bare_host = host.trim_start_matches('[').trim_end_matches(']');
            let server_name = rustls_pki_types::ServerName::try_from(bare_host.to_string())
                .map_err(|_| invalid("not a valid TLS server name"))?;
            let tcp = tokio::net::TcpStream::connect((bare_host, port)).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(server_name, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        }
    })
}
