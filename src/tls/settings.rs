//! TLS settings as the flags give them, checked without touching a file (`config` runs before
//! the data dir may be touched; certificates are read and generated in `embed::start`).

use std::path::PathBuf;

/// Which traffic a listener or a dialer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Peer,
}

impl Side {
    /// As log lines and the `fixtures/` directory name it.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
}

/// One side's TLS flags (etcd's `TLSInfo`): the client side (`--cert-file` ...) or the peer side
/// (`--peer-cert-file` ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    /// Generate a self-signed certificate when no cert/key files are given.
    pub auto_tls: bool,
}

impl TlsInfo {
    /// Builds one side's settings; `flags` names the side's flags for errors.
    pub fn new(
        flags: &SideFlags,
        cert_file: &str,
        key_file: &str,
        trusted_ca_file: &str,
        client_cert_auth: bool,
        auto_tls: bool,
    ) -> Result<TlsInfo, String> {
        let path = |text: &str| (!text.is_empty()).then(|| PathBuf::from(text));
        let info = TlsInfo {
            cert_file: path(cert_file),
            key_file: path(key_file),
            trusted_ca_file: path(trusted_ca_file),
            client_cert_auth,
            auto_tls,
        };
        match (&info.cert_file, &info.key_file) {
            (Some(_), None) => Err(format!("--{} is given without --{}", flags.cert, flags.key)),
            (None, Some(_)) => Err(format!("--{} is given without --{}", flags.key, flags.cert)),
            _ => Ok(info),
        }
    }

    /// Cert and key files are given (etcd's `!TLSInfo.Empty()`).
    pub fn has_files(&self) -> bool {
        self.cert_file.is_some()
    }

    /// The side can serve TLS: with its own files, or with a generated certificate.
    pub fn can_serve(&self) -> bool {
        self.has_files() || self.auto_tls
    }
}

/// The flag names of one side, for error messages.
pub struct SideFlags {
    pub cert: &'static str,
    pub key: &'static str,
}

pub const CLIENT_FLAGS: SideFlags = SideFlags {
    cert: "cert-file",
    key: "key-file",
};
pub const PEER_FLAGS: SideFlags = SideFlags {
    cert: "peer-cert-file",
    key: "peer-key-file",
};

/// The lowest TLS version served and spoken. rustls has no TLS 1.0 or 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// etcd's `--tls-min-version` names; empty means etcd's default, TLS 1.2.
    pub fn parse(text: &str) -> Result<TlsVersion, String> {
        match text {
            "" | "TLS1.2" => Ok(TlsVersion::Tls12),
            "TLS1.3" => Ok(TlsVersion::Tls13),
            "TLS1.0" | "TLS1.1" => Err(format!(
                "TLS version {text:?} is not supported: detcd speaks TLS1.2 and TLS1.3 only"
            )),
            other => Err(format!(
                "unexpected TLS version {other:?} (must be one of: TLS1.0, TLS1.1, TLS1.2, TLS1.3)"
            )),
        }
    }
}

/// The TLS 1.2 cipher suites rustls offers, under the names etcd's `--cipher-suites` takes (Go's).
/// TLS 1.3 suites cannot be chosen, in etcd (Go) as here: they are always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    EcdheEcdsaAes128Gcm,
    EcdheEcdsaAes256Gcm,
    EcdheEcdsaChacha20,
    EcdheRsaAes128Gcm,
    EcdheRsaAes256Gcm,
    EcdheRsaChacha20,
}

/// Suites Go (so etcd) knows but rustls does not offer: CBC, RC4, 3DES, and RSA key exchange.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

impl CipherSuite {
    pub fn parse(name: &str) -> Result<CipherSuite, String> {
        use CipherSuite::*;
        Ok(match name {
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => EcdheEcdsaAes128Gcm,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => EcdheEcdsaAes256Gcm,
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
            | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => EcdheEcdsaChacha20,
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => EcdheRsaAes128Gcm,
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => EcdheRsaAes256Gcm,
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
                EcdheRsaChacha20
            }
            known if GO_ONLY_SUITES.contains(&known) => {
                return Err(format!(
                    "TLS cipher suite {known:?} is not supported: detcd (rustls) offers ECDHE suites with AES-GCM or ChaCha20-Poly1305 only"
                ))
            }
            // etcd's own words.
            other => return Err(format!("unexpected TLS cipher suite {other:?}")),
        })
    }
}

/// What applies to both sides: `--cipher-suites`, `--tls-min-version`, `--self-signed-cert-validity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// Empty: rustls's defaults.
    pub cipher_suites: Vec<CipherSuite>,
    pub min_version: TlsVersion,
    /// Validity of `--auto-tls` / `--peer-auto-tls` certificates, in years.
    pub self_signed_cert_validity_years: u32,
}

impl TlsPolicy {
    pub fn new(
        cipher_suites: &str,
        min_version: &str,
        self_signed_cert_validity_years: u32,
    ) -> Result<TlsPolicy, String> {
        let cipher_suites = cipher_suites
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(CipherSuite::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let min_version = TlsVersion::parse(min_version)?;
        if !cipher_suites.is_empty() && min_version == TlsVersion::Tls13 {
            return Err("cipher suites cannot be configured when only TLS1.3 is enabled".into());
        }
        if self_signed_cert_validity_years == 0 {
            return Err("--self-signed-cert-validity must be greater than 0".into());
        }
        Ok(TlsPolicy {
            cipher_suites,
            min_version,
            self_signed_cert_validity_years,
        })
    }
}

impl Default for TlsPolicy {
    fn default() -> TlsPolicy {
        TlsPolicy {
            cipher_suites: Vec::new(),
            min_version: TlsVersion::Tls12,
            self_signed_cert_validity_years: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_take_gos_names_and_refuse_what_rustls_lacks() {
        let policy = TlsPolicy::new(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "",
            1,
        )
        .unwrap();
        assert_eq!(
            policy.cipher_suites,
            [
                CipherSuite::EcdheRsaAes128Gcm,
                CipherSuite::EcdheEcdsaChacha20
            ]
        );
        let unknown = TlsPolicy::new("FOO", "", 1).unwrap_err();
        assert_eq!(unknown, "unexpected TLS cipher suite \"FOO\"");
        let cbc = TlsPolicy::new("TLS_RSA_WITH_AES_128_CBC_SHA", "", 1).unwrap_err();
        assert!(cbc.contains("not supported"), "{cbc}");
    }

    #[test]
    fn min_version_names_are_etcds() {
        assert_eq!(TlsVersion::parse("").unwrap(), TlsVersion::Tls12);
        assert_eq!(TlsVersion::parse("TLS1.3").unwrap(), TlsVersion::Tls13);
        assert!(TlsVersion::parse("TLS1.1")
            .unwrap_err()
            .contains("not supported"));
        assert!(TlsVersion::parse("tls13")
            .unwrap_err()
            .contains("unexpected TLS version"));
        let both = TlsPolicy::new("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS1.3", 1);
        assert!(both.unwrap_err().contains("only TLS1.3"));
        assert!(TlsPolicy::new("", "", 0).unwrap_err().contains("validity"));
    }

    #[test]
    fn cert_and_key_come_together() {
        let err = TlsInfo::new(&CLIENT_FLAGS, "c.pem", "", "", false, false).unwrap_err();
        assert_eq!(err, "--cert-file is given without --key-file");
        let info = TlsInfo::new(&PEER_FLAGS, "c.pem", "k.pem", "", true, false).unwrap();
        assert!(info.has_files() && info.can_serve());
        assert!(TlsInfo::new(&PEER_FLAGS, "", "", "", false, true)
            .unwrap()
            .can_serve());
    }
}
