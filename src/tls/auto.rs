//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for the listen URLs' hosts, kept
//! under the data dir (`fixtures/client`, `fixtures/peer`) and reused by later runs, as etcd does.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The cert and key files of a generated certificate.
pub struct SelfCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Returns the certificate in `dir`, generating it first if it is not there. A peer certificate
/// also serves as a client certificate (members dial each other with it).
pub fn self_cert(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
    for_peers: bool,
    wall_ms: u64,
) -> Result<SelfCert, String> {
    let cert = SelfCert {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    if cert.cert_file.exists() && cert.key_file.exists() {
        return Ok(cert);
    }
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        format!(
            "cannot generate a self-signed certificate in {}: {what}: {error}",
            dir.display()
        )
    };
    let mut names: Vec<String> = hosts.to_vec();
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| failed("host names", &e))?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::OrganizationName, "etcd");
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::from_unix_timestamp((wall_ms / 1000) as i64)
        .map_err(|e| failed("clock", &e))?;
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    if for_peers {
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| failed("key", &e))?;
    let certificate = params
        .self_signed(&key)
        .map_err(|e| failed("signing", &e))?;
    std::fs::create_dir_all(dir).map_err(|e| failed("mkdir", &e))?;
    write_private(&cert.key_file, key.serialize_pem().as_bytes())
        .map_err(|e| failed("key.pem", &e))?;
    std::fs::write(&cert.cert_file, certificate.pem()).map_err(|e| failed("cert.pem", &e))?;
    tracing::info!(dir = %dir.display(), hosts = ?hosts, "generated a self-signed certificate");
    Ok(cert)
}

/// A key file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
