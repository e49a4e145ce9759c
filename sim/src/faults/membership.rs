//! The membership fault: replace a member the way an operator does (etcd's runtime
//! reconfiguration guide). Through another member, `member remove` its id; the removed member
//! stops by itself; wipe its data dir; `member add` its peer URL, as a voter or as a learner;
//! restart it with `--initial-cluster-state=existing`, so that it joins under the new id with an
//! empty log the leader fills; promote it once it has caught up if it is a learner.
//!
//! Requests may fail (a lossy network, a leader change): every step retries within a budget. The
//! step reached is kept in [`Replacement`] and every step is idempotent, so a replacement cut
//! short — a step out of budget, or the end of the safety phase — is finished by
//! [`Faults::heal`] from where it stopped.
//!
//! Whether a change happened is decided from a *fresh* member list (see
//! [`Client::fresh_member_list`]): a member that has not yet applied the latest changes would
//! still list a removed id, or not yet list an added one.

use std::future::Future;
use std::time::Duration;

use detcd::pb::etcdserverpb::Member as ListedMember;
use madsim::task::AbortHandle;
use madsim::time::Instant;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::{sleep, wait_until, Faults, WAIT_MAX};
use crate::client::Client;
use crate::cluster::{rejoin_flags, Cluster, Member};
use crate::options::FaultKind;

/// How long one step of the fault keeps retrying before leaving the rest to heal.
const FAULT_STEP_BUDGET: Duration = Duration::from_secs(20);

/// How long one step keeps retrying in heal, where no other fault gets in the way.
const HEAL_STEP_BUDGET: Duration = Duration::from_secs(60);

/// The pause between two attempts of a step.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A replacement under way: which member, and the next step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Replacement {
    pub(super) index: usize,
    as_learner: bool,
    step: Step,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Remove this id (the member still has its data): then wait for it to stop, and wipe it.
    Remove(u64),
    /// The member is removed, down and wiped: add it again.
    Add,
    /// The member was added under this id: start it to join (again, if a start fails), and
    /// promote it if it is a learner, until it answers as a voter.
    Rejoin(u64),
}

/// Attempts of one step: a deadline, and how many were made.
struct Budget {
    deadline: Instant,
    attempts: u32,
}

impl Budget {
    fn new(budget: Duration) -> Budget {
        Budget {
            deadline: Instant::now() + budget,
            attempts: 1,
        }
    }

    /// Pauses before the next attempt; false once the budget is spent.
    async fn next_attempt(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        sleep(RETRY_PAUSE).await;
        self.attempts += 1;
        true
    }
}

impl<'a> Faults<'a> {
    /// The fault: replace the leader or a follower, re-adding it as a voter or as a learner.
    pub(super) async fn replace_member(&mut self, drawn: usize) {
        match self.replacing {
            // One replacement at a time: one left unfinished goes on first.
            Some(pending) => self.resume_replacement(pending).await,
            None => self.start_replacement(drawn).await,
        }
    }

    async fn resume_replacement(&mut self, pending: Replacement) {
        if matches!(pending.step, Step::Remove(_)) && !self.removal_keeps_quorum(pending.index) {
            return;
        }
        let name = &self.cluster.members[pending.index].name;
        self.record("fault", name, "resume the unfinished replacement");
        if !self.advance_replacement(FAULT_STEP_BUDGET).await {
            self.record("fault", name, "replacement unfinished: heal ends it");
        }
    }

    async fn start_replacement(&mut self, drawn: usize) {
        if !self.removal_keeps_quorum(drawn) {
            return;
        }
        let of_leader = self.rng.random_bool(0.3);
        let as_learner = self.rng.random_bool(0.5);
        let leader = self.leader_index().await;
        let index = match leader {
            Some(leader) if of_leader => leader,
            Some(leader) if leader == drawn => match self.running_follower(leader) {
                Some(follower) => follower,
                None => return,
            },
            _ => drawn,
        };
        if !self.removal_keeps_quorum(index) {
            return;
        }
        let member = &self.cluster.members[index];
        let id = member.member_id();
        self.record(
            "fault",
            &member.name,
            format!(
                "replace {} {id:x}: member remove, wipe, member add{}, rejoin",
                if leader == Some(index) {
                    "the leader"
                } else {
                    "follower"
                },
                if as_learner { " as a learner" } else { "" },
            ),
        );
        self.replacing = Some(Replacement {
            index,
            as_learner,
            step: Step::Remove(id),
        });
        if !self.advance_replacement(FAULT_STEP_BUDGET).await {
            self.record(
                "fault",
                &member.name,
                "replacement unfinished: heal ends it",
            );
        }
    }

    /// Heal's part: finishes a replacement cut short, so the member ends a started voter.
    pub(super) async fn finish_replacement(&mut self) {
        let Some(replacement) = self.replacing else {
            return;
        };
        if !self.advance_replacement(HEAL_STEP_BUDGET).await {
            let name = &self.cluster.members[replacement.index].name;
            self.problems.push(format!(
                "could not finish replacing {name} (stuck at {:?}) in heal",
                self.replacing.map(|r| r.step)
            ));
        }
    }

    /// Removing a member of `n` must leave a majority of `n` running, so the cluster keeps a
    /// quorum even when the replacement goes wrong (with 3 members: only when all 3 are up).
    fn removal_keeps_quorum(&self, index: usize) -> bool {
        let members = &self.cluster.members;
        let others_running = members
            .iter()
            .filter(|m| m.index != index && m.is_running())
            .count();
        // A member another fault holds (paused, clogged, drifting) is that fault's to undo.
        let busy = self.busy.contains(&index);
        // While links are cut, the removed member may never hear of its removal, so it could not
        // stop by itself as the step expects (seed 0x13130c0: removed inside a partition).
        let links_cut = self
            .holding
            .iter()
            .any(|kind| matches!(kind, FaultKind::Partition | FaultKind::Clog));
        !busy && !links_cut && members[index].is_running() && others_running > members.len() / 2
    }

    fn running_follower(&self, leader: usize) -> Option<usize> {
        let members = &self.cluster.members;
        members
            .iter()
            .find(|m| m.index != leader && m.is_running())
            .map(|m| m.index)
    }

    /// Runs the replacement's steps until it is done (true) or a step runs out of `budget`.
    async fn advance_replacement(&mut self, budget: Duration) -> bool {
        let cluster: &'a Cluster = self.cluster;
        while let Some(replacement) = self.replacing {
            let member = &cluster.members[replacement.index];
            let next = match replacement.step {
                Step::Remove(id) => {
                    let armed = self.arm_on_another(member, "beforeApplyOneConfChange");
                    let removed = self.remove(member, id, budget).await;
                    disarm(armed);
                    removed.then_some(Step::Add)
                }
                Step::Add => {
                    let armed = self.arm_on_another(member, "beforeApplyOneConfChange");
                    let added = self.add(member, replacement.as_learner, budget).await;
                    disarm(armed);
                    added.map(Step::Rejoin)
                }
                Step::Rejoin(id) => {
                    let rejoined = self.rejoin(member, id, budget).await;
                    // A point armed at its start that it never reached (it caught up from the
                    // log) must not fire later, in the middle of another fault.
                    if member.armed_failpoint().is_some() && !member.is_awaiting_restart() {
                        member.disarm_failpoint();
                    }
                    if rejoined {
                        self.replacing = None;
                        return true;
                    }
                    None
                }
            };
            let Some(step) = next else {
                return false;
            };
            self.replacing = Some(Replacement {
                step,
                ..replacement
            });
        }
        true
    }

    /// Removes `id` through another member; then the member must stop by itself (it is killed
    /// if it does not), and its disk is wiped.
    async fn remove(&mut self, member: &Member, id: u64, budget: Duration) -> bool {
        let Some(((), attempts)) = self
            .retry(
                member,
                "member remove",
                budget,
                async |faults: &mut Self| faults.try_remove(member, id).await,
            )
            .await
        else {
            return false;
        };
        self.record(
            "fault",
            &member.name,
            format!("removed {id:x} (attempt {attempts})"),
        );
        if !wait_until(|| !member.is_running()).await {
            self.problems.push(format!(
                "{} did not stop within {WAIT_MAX:?} of its removal",
                member.name
            ));
        }
        member.kill();
        member.disk.wipe();
        self.record("fault", &member.name, "killed, data dir wiped");
        true
    }

    async fn try_remove(&mut self, member: &Member, id: u64) -> Result<(), String> {
        let via = self.other_member(member.index)?;
        let Err(error) = self
            .request(
                via,
                move |client| async move { client.member_remove(id).await },
            )
            .await
        else {
            return Ok(());
        };
        // The remove may have been applied although its answer was lost.
        if self
            .fresh_member_list(via)
            .await?
            .iter()
            .any(|m| m.id == id)
        {
            return Err(error);
        }
        Ok(())
    }

    /// Adds the member's peer URL again (unless an attempt cut short already did), and gives the
    /// member the new id and its joining flags; returns the new id.
    async fn add(&mut self, member: &Member, as_learner: bool, budget: Duration) -> Option<u64> {
        // An operator takes a moment between the two commands.
        sleep(Duration::from_millis(self.rng.random_range(0..2_000))).await;
        let (added, attempts) = self
            .retry(member, "member add", budget, async |faults: &mut Self| {
                faults.try_add(member, as_learner).await
            })
            .await?;
        self.record(
            "fault",
            &member.name,
            format!(
                "added as {} {:x} (attempt {attempts})",
                if added.is_learner { "learner" } else { "voter" },
                added.id,
            ),
        );
        // The rejoin step starts it (and starts it again if joining fails).
        member.replace_identity(added.id, rejoin_flags(member.index, &self.options));
        Some(added.id)
    }

    async fn try_add(&mut self, member: &Member, as_learner: bool) -> Result<ListedMember, String> {
        let via = self.other_member(member.index)?;
        // An earlier attempt may have been applied although its answer was lost.
        let listed = self.fresh_member_list(via).await?;
        if let Some(found) = listed
            .into_iter()
            .find(|m| m.peer_ur_ls.contains(&member.peer_url))
        {
            return Ok(found);
        }
        let peer_url = member.peer_url.clone();
        self.request(via, move |client| async move {
            client.member_add(&peer_url, as_learner).await
        })
        .await
    }

    /// Until the member answers as a started voter under `id` that has caught up: start it
    /// whenever it is down (a join fails when no peer answers), and promote it through the leader
    /// while it is a learner (the leader refuses until the learner has caught up).
    async fn rejoin(&mut self, member: &Member, id: u64, budget: Duration) -> bool {
        let Some(((), attempts)) = self
            .retry(member, "rejoin", budget, async |faults: &mut Self| {
                faults.try_rejoin(member, id).await
            })
            .await
        else {
            return false;
        };
        self.record(
            "heal",
            &member.name,
            format!("{id:x} is a started voter (attempt {attempts})"),
        );
        true
    }

    async fn try_rejoin(&mut self, member: &Member, id: u64) -> Result<(), String> {
        if !member.is_running() && !member.is_awaiting_restart() {
            let what = format!("restart as {id:x}, joining the existing cluster");
            self.record("heal", &member.name, what);
            member.restart();
            // It starts empty, so it installs the leader's snapshot if the leader's log no
            // longer starts at 1.
            let point = *["raftBeforeApplySnap", "raftAfterApplySnap"]
                .choose(&mut self.reach_rng)
                .expect("points");
            self.arm_where_reached(member, point);
        }
        let leader = self.leader_index().await.ok_or("no leader")?;
        let leader = &self.cluster.members[leader];
        let listed = self.fresh_member_list(leader).await?;
        let listed = listed
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| format!("{id:x} is not a member"))?;
        if listed.is_learner {
            self.request(leader, move |client| async move {
                client.member_promote(id).await
            })
            .await?;
            self.record("heal", &member.name, format!("promoted {id:x}"));
        }
        let leader_commit = self
            .request(leader, |client| async move { client.status().await })
            .await?
            .raft_index;
        let status = self
            .request(member, |client| async move { client.status().await })
            .await?;
        if status.header.map(|h| h.member_id) != Some(id) || status.leader == 0 {
            return Err("not yet serving as a member with a leader".to_string());
        }
        // Caught up to where the leader was a moment ago: a member that never catches up (it
        // cannot use what the leader sends) would otherwise count as a working voter.
        if status.raft_applied_index < leader_commit {
            return Err(format!(
                "applied {} of the leader's {leader_commit}",
                status.raft_applied_index
            ));
        }
        Ok(())
    }

    /// Crash faults at the points a replacement reaches, which a crash armed at a random moment
    /// rarely meets: with crashes among the seed's faults, half the time arms `point` on
    /// `member`, which is about to reach it; returns the member if armed.
    fn arm_where_reached<'m>(
        &mut self,
        member: &'m Member,
        point: &'static str,
    ) -> Option<&'m Member> {
        let crashes = self
            .options
            .faults
            .iter()
            .any(|(kind, _)| *kind == FaultKind::Crash);
        if !crashes || member.armed_failpoint().is_some() || !self.reach_rng.random_bool(0.5) {
            return None;
        }
        self.record("fault", &member.name, format!("arm failpoint {point}"));
        member.arm_failpoint(point);
        Some(member)
    }

    /// [`Faults::arm_where_reached`] on a running member other than `member`: every member
    /// applies the membership change.
    fn arm_on_another(&mut self, member: &Member, point: &'static str) -> Option<&'a Member> {
        let cluster: &'a Cluster = self.cluster;
        let others: Vec<&'a Member> = cluster
            .members
            .iter()
            .filter(|m| m.index != member.index && m.is_running())
            .collect();
        let other = *others.choose(&mut self.reach_rng)?;
        self.arm_where_reached(other, point)
    }

    /// Runs `attempt` until it succeeds or `budget` is spent, which it records as giving up on
    /// `step`; returns what succeeded and after how many attempts.
    async fn retry<T>(
        &mut self,
        member: &Member,
        step: &str,
        budget: Duration,
        mut attempt: impl AsyncFnMut(&mut Self) -> Result<T, String>,
    ) -> Option<(T, u32)> {
        let mut budget = Budget::new(budget);
        loop {
            match attempt(self).await {
                Ok(value) => return Some((value, budget.attempts)),
                Err(error) if !budget.next_attempt().await => {
                    self.record(
                        "fault",
                        &member.name,
                        format!(
                            "{step}: giving up after {} attempts: {error}",
                            budget.attempts
                        ),
                    );
                    return None;
                }
                Err(_) => {}
            }
        }
    }

    /// The member whose id the first member to answer `Status` names as leader.
    pub(super) async fn leader_index(&self) -> Option<usize> {
        for member in self.cluster.members.iter().filter(|m| m.is_running()) {
            let Ok(status) = self
                .request(member, |client| async move { client.status().await })
                .await
            else {
                continue;
            };
            let leader = self
                .cluster
                .members
                .iter()
                .find(|m| status.leader != 0 && m.member_id() == status.leader);
            if let Some(leader) = leader {
                return Some(leader.index);
            }
        }
        None
    }

    /// One request to `via`, sent from the operator's node. A fault cut short takes its request
    /// with it, as a killed `etcdctl` would, rather than leaving it to land during heal.
    async fn request<T, F, Fut>(&self, via: &Member, call: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
    {
        let task = self
            .operator
            .spawn(call(Client::new(via.client_url.clone())));
        let _abort = AbortOnDrop(task.abort_handle());
        task.await
            .map_err(|error| format!("request task: {error}"))?
            .map_err(|error| format!("via {}: {error}", via.name))
    }

    async fn fresh_member_list(&self, via: &Member) -> Result<Vec<ListedMember>, String> {
        self.request(
            via,
            |mut client| async move { client.fresh_member_list().await },
        )
        .await
        .map_err(|error| format!("member list {error}"))
    }

    /// A running member other than `index`, drawn by the seed.
    fn other_member(&mut self, index: usize) -> Result<&'a Member, String> {
        let cluster: &'a Cluster = self.cluster;
        let others: Vec<&'a Member> = cluster
            .members
            .iter()
            .filter(|m| m.index != index && m.is_running())
            .collect();
        others
            .choose(&mut self.rng)
            .copied()
            .ok_or_else(|| "no other member runs".to_string())
    }
}

/// Disarms a point armed for one step if the member did not reach it within the step, so it
/// does not fire later in the middle of another fault.
fn disarm(armed: Option<&Member>) {
    if let Some(member) = armed.filter(|m| !m.is_awaiting_restart()) {
        member.disarm_failpoint();
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
