//! TLS for client and peer traffic, as etcd serves it: `https://` listen URLs, certificates from
//! files or generated (`--auto-tls`), client certificates checked when asked, and TLS channels to
//! peers and to the leader.
//!
//! The settings ([`settings`]) and the [`Dialer`] exist in both builds. Everything that touches
//! TLS itself runs on real sockets only: madsim's network carries gRPC calls as values, not bytes,
//! so in the simulator TLS settings are accepted and ignored, and TLS is tested on real sockets.

mod dial;
pub mod settings;

#[cfg(not(madsim))]
mod accept;
#[cfg(not(madsim))]
mod auto;
#[cfg(not(madsim))]
mod material;

#[cfg(not(madsim))]
pub use accept::{client_common_name, TlsListener};
pub use dial::{Dialer, Dialers};
#[cfg(not(madsim))]
pub use material::{Material, UpstreamTls};
pub use settings::{Side, TlsInfo, TlsPolicy};

/// The simulator's stand-in: no certificates to read, plain channels.
#[cfg(madsim)]
pub struct Material;

#[cfg(madsim)]
impl Material {
    pub fn prepare(_config: &crate::config::Config, _wall_ms: u64) -> Result<Material, String> {
        Ok(Material)
    }

    pub fn dialers(&self) -> Dialers {
        Dialers::default()
    }
}

/// An error with its causes, as one line: transport errors say little at the top.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
