//! Raised alarms (etcd's `alarm` store): which member raised which alarm. Alarms are raft
//! entries, applied on every member, and ride in snapshots, so every member refuses the same
//! writes while one is raised. Kept ordered (member id, alarm type) so `alarm list` and
//! snapshots come out the same on every member.

use std::collections::BTreeSet;

use crate::pb::etcdserverpb::{AlarmMember, AlarmType};

#[derive(Debug, Default)]
pub struct Alarms {
    raised: BTreeSet<(u64, i32)>,
}

impl Alarms {
    pub fn restore(&mut self, alarms: &[AlarmMember]) {
        self.raised = alarms.iter().map(|a| (a.member_id, a.alarm)).collect();
    }

    pub fn list(&self) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Raises `alarm` for `member_id`; true if it was not raised already.
    pub fn activate(&mut self, member_id: u64, alarm: AlarmType) -> bool {
        self.raised.insert((member_id, alarm as i32))
    }

    /// Clears `alarm` for `member_id`; true if it was raised.
    pub fn deactivate(&mut self, member_id: u64, alarm: AlarmType) -> bool {
        self.raised.remove(&(member_id, alarm as i32))
    }

    /// Whether any member has raised `alarm`.
    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.raised
            .iter()
            .any(|&(_, raised)| raised == alarm as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_is_raised_once_and_cleared_once() {
        let mut alarms = Alarms::default();
        assert!(alarms.activate(7, AlarmType::Nospace));
        assert!(!alarms.activate(7, AlarmType::Nospace));
        assert!(alarms.is_raised(AlarmType::Nospace));
        assert!(alarms.deactivate(7, AlarmType::Nospace));
        assert!(!alarms.deactivate(7, AlarmType::Nospace));
        assert!(!alarms.is_raised(AlarmType::Nospace));
    }
}
