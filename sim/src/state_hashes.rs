//! Checks during the run, TigerBeetle style: while the workload and the faults run, an auditor
//! asks every member it can reach for its revision, then for `HashKV` at a revision all of them
//! have applied. Members that applied the same log prefix must hash alike there, at any moment,
//! not only once healed: a divergence that a snapshot install or a compaction papers over
//! later is still a divergence (`checkers::state_hashes`).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::client::Client;
use crate::history::StateHash;
use crate::recorded::Recorded;
use crate::trace::now_ns;

/// The hashes the auditor took.
pub type StateHashRecorder = Recorded<StateHash>;

/// A member that does not answer within this is skipped this round (paused, clogged, down).
const ANSWER_MAX: Duration = Duration::from_secs(1);

async fn answer<T>(request: impl std::future::Future<Output = Result<T, String>>) -> Option<T> {
    madsim::time::timeout(ANSWER_MAX, request).await.ok()?.ok()
}

/// Audits until aborted. Its own RNG, so that the auditor's timing moves no other draw.
pub async fn audit(urls: Vec<String>, seed: u64, recorder: StateHashRecorder) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5_7a7e_4a54);
    loop {
        madsim::time::sleep(Duration::from_millis(rng.random_range(200..1_500))).await;
        let mut applied = Vec::new();
        for (index, url) in urls.iter().enumerate() {
            if let Some(status) = answer(Client::new(url.clone()).status()).await {
                applied.push((index, status.header.map_or(0, |h| h.revision)));
            }
        }
        let Some(lowest) = applied.iter().map(|&(_, revision)| revision).min() else {
            continue;
        };
        if applied.len() < 2 {
            continue;
        }
        // Sometimes a little behind, where a compaction may have just removed revisions.
        let revision = (lowest - rng.random_range(0..3)).max(1);
        for (index, _) in applied {
            if let Some(hash) = answer(Client::new(urls[index].clone()).hash_kv(revision)).await {
                recorder.push(StateHash {
                    taken_ns: now_ns(),
                    member: format!("n{}", index + 1),
                    revision,
                    compact_revision: hash.compact_revision,
                    hash: hash.hash,
                });
            }
        }
    }
}
