//! The backend quota (etcd's `quota.go`): whether a write that grows the backend may be proposed.
//! Raising the NOSPACE alarm when it may not is the proposer's, since that is a proposal too.

use std::sync::{Arc, Mutex};

use crate::pb::etcdserverpb::AlarmType;
use crate::server::alarms::Alarms;
use crate::storage::mvcc::KvStore;

pub struct Quota {
    kv: Arc<Mutex<KvStore>>,
    alarms: Arc<Mutex<Alarms>>,
    quota_backend_bytes: u64,
}

/// Why a write may not be proposed.
#[derive(Debug, PartialEq, Eq)]
pub enum Over {
    /// Some member raised NOSPACE: every member refuses what grows the backend until it clears.
    AlarmRaised,
    /// This write would take the backend, now `size_bytes`, over the quota.
    WouldExceed { size_bytes: u64 },
}

impl Quota {
    pub fn new(
        kv: Arc<Mutex<KvStore>>,
        alarms: Arc<Mutex<Alarms>>,
        quota_backend_bytes: u64,
    ) -> Quota {
        Quota {
            kv,
            alarms,
            quota_backend_bytes,
        }
    }

    /// Admits a write that adds about `cost_bytes` to the backend.
    pub fn admit(&self, cost_bytes: u64) -> Result<(), Over> {
        if self.alarms.lock().unwrap().is_raised(AlarmType::Nospace) {
            return Err(Over::AlarmRaised);
        }
        let size_bytes = self.kv.lock().unwrap().size_bytes();
        if size_bytes + cost_bytes <= self.quota_backend_bytes {
            return Ok(());
        }
        Err(Over::WouldExceed { size_bytes })
    }
}
