//! Certificates read (or generated) at start-up and turned into rustls configurations: one for
//! serving and one for dialing, per side. Every problem (a missing file, bad PEM, a key that does
//! not match) is an error here, before anything listens.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::auto;
use super::settings::{CipherSuite, Side, TlsPolicy, TlsVersion};
use super::{Dialer, Dialers};
use crate::config::Config;

struct SideTls {
    server: Arc<ServerConfig>,
    dial: Arc<ClientConfig>,
}

/// The member's TLS configurations; a side without TLS flags has none.
pub struct Material {
    client: Option<SideTls>,
    peer: Option<SideTls>,
}

impl Material {
    /// Reads the certificates the flags name, generating `--auto-tls` ones under the data dir.
    pub fn prepare(config: &Config, wall_ms: u64) -> Result<Material, String> {
        Ok(Material {
            client: prepare_side(config, Side::Client, wall_ms)?,
            peer: prepare_side(config, Side::Peer, wall_ms)?,
        })
    }

    /// No TLS on either side: the grpc-proxy, which serves and dials plain `http://` only.
    pub fn plain() -> Material {
        Material {
            client: None,
            peer: None,
        }
    }

    /// The configuration to serve `side`'s `https://` listeners with.
    pub fn server_config(&self, side: Side) -> Option<Arc<ServerConfig>> {
        self.side(side).map(|tls| tls.server.clone())
    }

    pub fn dialers(&self) -> Dialers {
        let dialer = |side| match self.side(side) {
            Some(tls) => Dialer::with_tls(tls.dial.clone()),
            None => Dialer::default(),
        };
        Dialers {
            peer: dialer(Side::Peer),
            client: dialer(Side::Client),
        }
    }

    fn side(&self, side: Side) -> Option<&SideTls> {
        match side {
            Side::Client => self.client.as_ref(),
            Side::Peer => self.peer.as_ref(),
        }
    }
}

fn prepare_side(config: &Config, side: Side, wall_ms: u64) -> Result<Option<SideTls>, String> {
    let (info, urls) = match side {
        Side::Client => (&config.client_tls, &config.listen_client_addrs),
        Side::Peer => (&config.peer_tls, &config.listen_peer_addrs),
    };
    let policy = &config.tls_policy;
    let (cert_file, key_file, self_signed) = match (&info.cert_file, &info.key_file) {
        (Some(cert), Some(key)) => {
            if info.auto_tls {
                tracing::warn!(side = side.name(), "ignoring auto TLS since certs given");
            }
            (cert.clone(), key.clone(), false)
        }
        _ if info.auto_tls => {
            let hosts: Vec<String> = urls.iter().map(|url| url.host.clone()).collect();
            let dir = config.data_dir.join("fixtures").join(side.name());
            let generated = auto::self_cert(
                &dir,
                &hosts,
                policy.self_signed_cert_validity_years,
                side == Side::Peer,
                wall_ms,
            )?;
            (generated.cert_file, generated.key_file, true)
        }
        _ => return Ok(None),
    };
    let chain = read_certificates(&cert_file, "certificate")?;
    let provider = Arc::new(provider(policy));
    let versions = versions(policy.min_version);

    // A generated certificate stands alone, so etcd drops client-cert-auth with it; otherwise
    // a trusted CA means clients must show a certificate it signed.
    let client_roots = match (&info.trusted_ca_file, info.client_cert_auth) {
        _ if self_signed => None,
        (Some(ca_file), _) => Some(root_store(ca_file)?),
        (None, true) => {
            return Err(format!(
                "{} client cert auth needs a trusted CA file (--{}trusted-ca-file)",
                side.name(),
                flag_prefix(side)
            ))
        }
        (None, false) => None,
    };
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{} TLS: {e}", side.name()))?;
    let server = match &client_roots {
        Some(roots) => server.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| format!("{} trusted CA: {e}", side.name()))?,
        ),
        None => server.with_no_client_auth(),
    };
    let mut server = server
        .with_single_cert(chain.clone(), read_key(&key_file)?)
        .map_err(|e| format!("{} and {}: {e}", cert_file.display(), key_file.display()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    // Dialing: verify the other end against the trusted CA. Without one, a self-signed peer
    // certificate cannot be verified and is not (etcd's InsecureSkipVerify for auto TLS), and
    // nor is the leader's client URL, which a member dials for lease forwarding only (etcd skips
    // verification when it dials its own client URLs, for its gateway).
    let dial = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{} TLS: {e}", side.name()))?;
    let dial = match (&info.trusted_ca_file, self_signed, side) {
        (Some(ca_file), false, _) => dial.with_root_certificates(root_store(ca_file)?),
        (None, false, Side::Peer) => {
            return Err(
                "--peer-cert-file needs --peer-trusted-ca-file, to verify the other members' certificates (or use --peer-auto-tls)"
                    .to_string(),
            )
        }
        _ => dial
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider.clone()))),
    };
    let mut dial = dial
        .with_client_auth_cert(chain, read_key(&key_file)?)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    dial.alpn_protocols = vec![b"h2".to_vec()];
    tracing::info!(
        side = side.name(),
        cert = %cert_file.display(),
        key = %key_file.display(),
        trusted_ca = ?info.trusted_ca_file,
        client_cert_auth = client_roots.is_some(),
        self_signed,
        "TLS configured"
    );
    Ok(Some(SideTls {
        server: Arc::new(server),
        dial: Arc::new(dial),
    }))
}

fn flag_prefix(side: Side) -> &'static str {
    match side {
        Side::Client => "",
        Side::Peer => "peer-",
    }
}

/// rustls's ring provider, cut down to `--cipher-suites` (TLS 1.2 ones; TLS 1.3 suites stay).
fn provider(policy: &TlsPolicy) -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as suite;
    let mut provider = rustls::crypto::ring::default_provider();
    if !policy.cipher_suites.is_empty() {
        let chosen = policy.cipher_suites.iter().map(|chosen| match chosen {
            CipherSuite::EcdheEcdsaAes128Gcm => suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::EcdheEcdsaAes256Gcm => suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::EcdheEcdsaChacha20 => suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            CipherSuite::EcdheRsaAes128Gcm => suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::EcdheRsaAes256Gcm => suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::EcdheRsaChacha20 => suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        });
        let tls13 = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|suite| suite.version() == &rustls::version::TLS13);
        provider.cipher_suites = tls13.chain(chosen).collect();
    }
    provider
}

fn versions(min: TlsVersion) -> Vec<&'static rustls::SupportedProtocolVersion> {
    match min {
        TlsVersion::Tls12 => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => vec![&rustls::version::TLS13],
    }
}

/// Go's words for a file without PEM, so an operator sees what etcd would have said.
fn pem_error(path: &Path, what: &str, error: rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(error) => format!("open {}: {error}", path.display()),
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{}: tls: failed to find any PEM data in {what} input",
            path.display()
        ),
        other => format!("{}: bad PEM {what}: {other}", path.display()),
    }
}

fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, what, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, what, e))?;
    if certificates.is_empty() {
        return Err(pem_error(
            path,
            what,
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, "key", e))
}

fn root_store(ca_file: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(ca_file, "CA certificate")? {
        roots
            .add(certificate)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    Ok(Arc::new(roots))
}

/// Accepts any server certificate (signatures are still checked): see `prepare_side`.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
