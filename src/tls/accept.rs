//! The accept side: TLS handshakes on a listener, each in its own task so a slow or silent client
//! cannot hold up the others, refusals logged with the remote address and the reason, and the
//! verified client certificate's Common Name handed to request handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::Side;
use crate::api::identity::ClientCommonName;

/// A client has this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_QUEUE_MAX: usize = 64;

/// A TCP listener that hands out only connections whose TLS handshake succeeded.
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    /// The accept loop; it owns the socket, so stopping it frees the port.
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl TlsListener {
    /// `side` names the listener in log lines.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        side: Side,
    ) -> std::io::Result<TlsListener> {
        let side = side.name();
        let local_addr = tcp.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE_MAX);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (stream, remote) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a little, as hyper does.
                        tracing::warn!(%error, side, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY");
                }
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, remote)).await;
                        }
                        Ok(Err(error)) => tracing::warn!(
                            remote_addr = %remote,
                            side,
                            reason = %super::error_chain(&error),
                            "rejected connection: TLS handshake failed"
                        ),
                        Err(_) => tracing::warn!(
                            remote_addr = %remote,
                            side,
                            reason = "no handshake within 10s",
                            "rejected connection: TLS handshake failed"
                        ),
                    }
                });
            }
        });
        Ok(TlsListener {
            local_addr,
            accepted,
            accept_loop,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop holds the sender until the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// The CN of a TLS client's certificate. Only verified certificates are ever presented here
/// (rustls asks for one only when client certificates are required, and then verifies it).
pub fn client_common_name(stream: &TlsStream<TcpStream>) -> Option<ClientCommonName> {
    let (_, session) = stream.get_ref();
    session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| common_name(leaf))
}

fn common_name(der: &[u8]) -> Option<ClientCommonName> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = certificate.subject().iter_common_name().next()?;
    Some(ClientCommonName(name.as_str().ok()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_comes_from_the_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let certificate = params.self_signed(&key).unwrap();
        assert_eq!(
            common_name(certificate.der()),
            Some(ClientCommonName("alice".into()))
        );
        params.distinguished_name = rcgen::DistinguishedName::new();
        let nameless = params.self_signed(&key).unwrap();
        assert_eq!(common_name(nameless.der()), None);
    }
}
