//! Certificates for TLS tests, made with rcgen: a CA the servers trust and one they do not.

use std::path::{Path, PathBuf};

/// Two CAs; certificates signed by the first, and two by the second, which the servers do not trust.
pub struct Pki {
    pub ca: PathBuf,
    pub member: (PathBuf, PathBuf),
    pub client: (PathBuf, PathBuf),
    /// A client certificate for the user `alice` (CN-as-user with auth enabled).
    pub alice: (PathBuf, PathBuf),
    pub foreign_client: (PathBuf, PathBuf),
    pub foreign_member: (PathBuf, PathBuf),
    /// The second CA, which signed the foreign pair only.
    pub foreign_ca: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (ca_pem, ca) = new_ca("detcd test CA");
        let (other_ca_pem, other_ca) = new_ca("another CA");
        let pair = |name: &str, cn: &str, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>| {
            let (cert, key) = leaf(cn, issuer);
            (
                write(&format!("{name}.pem"), &cert),
                write(&format!("{name}-key.pem"), &key),
            )
        };
        Pki {
            member: pair("member", "member", &ca),
            client: pair("client", "root", &ca),
            alice: pair("alice", "alice", &ca),
            foreign_client: pair("foreign-client", "root", &other_ca),
            foreign_member: pair("foreign-member", "member", &other_ca),
            ca: write("ca.pem", &ca_pem),
            foreign_ca: write("foreign-ca.pem", &other_ca_pem),
        }
    }

    pub fn member_flags(&self, prefix: &str) -> Vec<String> {
        vec![
            format!("--{prefix}cert-file={}", self.member.0.display()),
            format!("--{prefix}key-file={}", self.member.1.display()),
            format!("--{prefix}trusted-ca-file={}", self.ca.display()),
            format!("--{prefix}client-cert-auth"),
        ]
    }
}

fn new_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, rcgen::Issuer::new(params, key))
}

/// A certificate for 127.0.0.1 and localhost, good for serving and for client auth (a member
/// uses its peer certificate both ways).
fn leaf(cn: &str, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}
