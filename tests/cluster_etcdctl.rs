//! Runs one etcdctl session of membership and status commands against a 3-member etcd 3.4 cluster
//! and then against a 3-member detcd cluster on the same ports, and requires the same output once
//! what differs by nature is masked: member and cluster ids (replaced by the member's name, so a
//! wrong id still shows), raft terms and indexes, DB size, the version, the order of members
//! (etcd sorts by id, and ids are random) and health-check latencies.
//!
//! Not in the session because detcd differs: etcd 3.4 refuses `member add` with "etcdserver:
//! unhealthy cluster" unless every voting member has been connected for the last 5 s (its strict
//! reconfiguration check), so it refuses while an added voter has not started; detcd accepts.
#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    assert_same_transcripts, drop_client_logs, etcdctl, json_u64, stdout, Cluster, MemberSpec,
    Server,
};

/// Where a step's etcdctl connects.
#[derive(Clone, Copy)]
enum At {
    /// One member by index: n1 is made leader before the session, so the rest are followers.
    Member(usize),
    All,
}

/// One etcdctl call. Arguments may name `{id:NAME}` (a member's hex id) and `{peer:NAME}` (a
/// peer URL on a fixed port, also for the members that are added but never started).
struct Step {
    at: At,
    args: &'static [&'static str],
    /// Fields (0-based; `, `-separated or table cells) masked in lines that name an endpoint.
    masked_fields: &'static [usize],
}

const fn on(at: At, args: &'static [&'static str]) -> Step {
    Step {
        at,
        args,
        masked_fields: &[],
    }
}

/// `endpoint status` fields that differ by nature: version, DB size, raft term, index, applied.
const STATUS_FIELDS: &[usize] = &[2, 3, 6, 7, 8];

const fn status(at: At, args: &'static [&'static str]) -> Step {
    Step {
        at,
        args,
        masked_fields: STATUS_FIELDS,
    }
}

const N1: At = At::Member(0);
const N3: At = At::Member(2);

const SESSION: &[Step] = &[
    on(N1, &["member", "list"]),
    on(N1, &["member", "list", "-w", "table"]),
    on(N1, &["member", "list", "-w", "json"]),
    status(At::All, &["endpoint", "status"]),
    status(At::All, &["endpoint", "status", "-w", "table"]),
    status(N1, &["endpoint", "status", "--cluster", "-w", "table"]),
    on(At::All, &["endpoint", "health"]),
    // The learner first: once n4, a voter, is added and not started, etcd refuses every further
    // add with "unhealthy cluster" (detcd does not yet; see the module doc).
    on(
        N1,
        &["member", "add", "n5", "--learner", "--peer-urls={peer:n5}"],
    ),
    on(N1, &["member", "add", "n4", "--peer-urls={peer:n4}"]),
    on(N1, &["member", "list"]),
    on(N1, &["member", "list", "-w", "table"]),
    on(N1, &["member", "promote", "{id:n5}"]),
    on(
        N1,
        &["member", "update", "{id:n4}", "--peer-urls={peer:n6}"],
    ),
    on(N1, &["member", "list", "-w", "json"]),
    on(N1, &["member", "remove", "{id:n4}"]),
    on(N1, &["member", "remove", "{id:n4}"]),
    on(N1, &["member", "remove", "{id:n5}"]),
    on(N1, &["member", "list"]),
    on(N3, &["move-leader", "{id:n2}"]),
    on(N1, &["move-leader", "{id:n2}"]),
    on(At::All, &["endpoint", "health"]),
    status(At::All, &["endpoint", "status", "-w", "table"]),
];

/// Names of the members that are added during the session and never started.
const UNSTARTED: [&str; 3] = ["n4", "n5", "n6"];

/// A member's id as etcdctl prints it in each format.
struct Id {
    hex: String,
    decimal: String,
}

impl Id {
    fn new(id: u64) -> Id {
        Id {
            hex: format!("{id:x}"),
            decimal: id.to_string(),
        }
    }
}

struct Session {
    endpoints: Vec<String>,
    peer_ports: BTreeMap<String, u16>,
    /// Learned from `member list` before the session and from `member add` during it.
    ids: BTreeMap<String, Id>,
}

impl Session {
    fn endpoint(&self, at: At) -> String {
        match at {
            At::Member(i) => self.endpoints[i].clone(),
            At::All => self.endpoints.join(","),
        }
    }

    fn fill_in(&self, arg: &str) -> String {
        let mut arg = arg.to_string();
        for (name, id) in &self.ids {
            arg = arg.replace(&format!("{{id:{name}}}"), &id.hex);
        }
        for (name, port) in &self.peer_ports {
            arg = arg.replace(
                &format!("{{peer:{name}}}"),
                &format!("http://127.0.0.1:{port}"),
            );
        }
        arg
    }

    /// Each step's exit status, stdout and stderr, masked.
    fn run(&mut self) -> Vec<String> {
        SESSION
            .iter()
            .map(|step| {
                let args: Vec<String> = step.args.iter().map(|arg| self.fill_in(arg)).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let output = etcdctl(&self.endpoint(step.at), &args);
                let out = String::from_utf8_lossy(&output.stdout).into_owned();
                let err = drop_client_logs(&String::from_utf8_lossy(&output.stderr));
                if let (["member", "add", name, ..], Some(id)) = (&args[..], added_id(&out)) {
                    self.ids.insert(name.to_string(), Id::new(id));
                }
                format!(
                    "$ etcdctl {}\nexit: {:?}\n{}{}",
                    step.args.join(" "),
                    output.status.code(),
                    self.mask(&out, step.masked_fields),
                    self.mask(&err, step.masked_fields),
                )
            })
            .collect()
    }

    fn mask(&self, text: &str, masked_fields: &[usize]) -> String {
        let mut text = text.to_string();
        for (name, id) in &self.ids {
            text = replace_token(&text, &id.hex, &format!("<{name}>"));
            text = replace_token(&text, &id.decimal, &format!("<{name}>"));
        }
        let text = mask_after(&text, "\"raft_term\":", |c| c.is_ascii_digit());
        let text = mask_after(&text, "took = ", |c| c != '\n');
        let text = sort_json_members(&text);
        let lines: Vec<String> = text
            .lines()
            .map(|line| normalize_table(&mask_fields(line, masked_fields)))
            .map(|line| sort_initial_cluster(&line))
            .map(|line| collapse_padding(&line))
            .collect();
        sort_endpoint_lines(lines)
            .into_iter()
            .map(|line| line + "\n")
            .collect()
    }
}

/// "Member 2f6e1c5a3b added to cluster …" → the new member's id.
fn added_id(stdout: &str) -> Option<u64> {
    let hex = stdout.strip_prefix("Member ")?.split_whitespace().next()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Replaces `token` where it is not part of a longer hex word or number.
fn replace_token(text: &str, token: &str, label: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(token) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + token.len()..].chars().next();
        let bounded = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric());
        out.push_str(&rest[..at]);
        out.push_str(if bounded(before) && bounded(after) {
            label
        } else {
            token
        });
        rest = &rest[at + token.len()..];
    }
    out + rest
}

/// Masks the run of characters matching `keep_masking` after each `marker`.
fn mask_after(text: &str, marker: &str, keep_masking: impl Fn(char) -> bool) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let end = rest.find(|c| !keep_masking(c)).unwrap_or(rest.len());
        out.push_str("<masked>");
        rest = &rest[end..];
    }
    out + rest
}

/// Masks the given fields of an endpoint's line, in simple (`, `) or table (`|`) format.
fn mask_fields(line: &str, masked_fields: &[usize]) -> String {
    if masked_fields.is_empty() || !line.contains("127.0.0.1:") {
        return line.to_string();
    }
    let (separator, offset) = if line.starts_with('|') {
        ("|", 1)
    } else {
        (", ", 0)
    };
    let mut fields: Vec<String> = line.split(separator).map(str::to_string).collect();
    for field in masked_fields {
        if let Some(cell) = fields.get_mut(field + offset) {
            *cell = "<masked>".to_string();
        }
    }
    fields.join(separator)
}

/// Table columns are as wide as their widest cell, and ids differ in length (etcd prints them
/// without leading zeros): compare cells trimmed and borders as one dash.
fn normalize_table(line: &str) -> String {
    if line.starts_with('|') {
        line.split('|').map(str::trim).collect::<Vec<_>>().join("|")
    } else if line.starts_with('+') {
        line.split('+')
            .map(|border| if border.is_empty() { "" } else { "-" })
            .collect::<Vec<_>>()
            .join("+")
    } else {
        line.to_string()
    }
}

/// etcdctl pads ids to 16 hex digits (`Member %16x added to cluster %16x`), so a shorter id
/// leaves a run of spaces before its label.
fn collapse_padding(line: &str) -> String {
    let mut line = line.to_string();
    while line.contains("  ") {
        line = line.replace("  ", " ");
    }
    line
}

/// `member add` prints `ETCD_INITIAL_CLUSTER` in member order, which is id order: sort it.
fn sort_initial_cluster(line: &str) -> String {
    let Some(list) = line
        .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return line.to_string();
    };
    let mut members: Vec<&str> = list.split(',').collect();
    members.sort();
    format!("ETCD_INITIAL_CLUSTER=\"{}\"", members.join(","))
}

/// Members come in id order, and ids are random: sort the lines that name an endpoint among
/// themselves, in place.
fn sort_endpoint_lines(mut lines: Vec<String>) -> Vec<String> {
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("127.0.0.1:") && !lines[i].starts_with("ETCD_"))
        .collect();
    let mut sorted: Vec<String> = at.iter().map(|&i| lines[i].clone()).collect();
    sorted.sort();
    for (i, line) in at.into_iter().zip(sorted) {
        lines[i] = line;
    }
    lines
}

/// The same for `"members":[{…},{…}]` in JSON (member objects hold no nested objects).
fn sort_json_members(text: &str) -> String {
    let marker = "\"members\":[{";
    let Some(start) = text.find(marker).map(|at| at + marker.len()) else {
        return text.to_string();
    };
    let Some(end) = text[start..].find("}]").map(|at| start + at) else {
        return text.to_string();
    };
    let mut members: Vec<&str> = text[start..end].split("},{").collect();
    members.sort();
    format!("{}{}{}", &text[..start], members.join("},{"), &text[end..])
}

/// Starts `server` on the fixed ports of `specs`, makes n1 the leader (elections pick at random)
/// and learns the members' ids.
fn start(server: Server, specs: &[MemberSpec], root: &Path) -> (Cluster, BTreeMap<String, Id>) {
    std::fs::create_dir(root).unwrap();
    let specs: Vec<MemberSpec> = specs.iter().map(|spec| spec.moved_to(root)).collect();
    let cluster = Cluster::start_members(server, specs, &[]);
    let mut ids = BTreeMap::new();
    let list = stdout(&etcdctl(&cluster.specs[0].endpoint(), &["member", "list"]));
    for line in list.lines() {
        let fields: Vec<&str> = line.split(", ").collect();
        let id = u64::from_str_radix(fields[0], 16).unwrap();
        ids.insert(fields[2].to_string(), Id::new(id));
    }
    let status = stdout(&etcdctl(
        &cluster.specs[0].endpoint(),
        &["endpoint", "status", "-w", "json"],
    ));
    let cluster_id = json_u64(&status, "\"cluster_id\":").unwrap();
    ids.insert("cluster".to_string(), Id::new(cluster_id));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match cluster.leader() {
            Some(0) => break,
            Some(leader) => {
                let leader = cluster.specs[leader].endpoint();
                etcdctl(&leader, &["move-leader", &ids["n1"].hex]);
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
        assert!(Instant::now() < deadline, "n1 did not become leader");
    }
    // etcd refuses membership changes ("unhealthy cluster") until every voting member has been
    // connected for its HealthInterval, 5 s.
    std::thread::sleep(Duration::from_secs(6));
    (cluster, ids)
}

fn transcript(
    server: Server,
    specs: &[MemberSpec],
    peer_ports: &BTreeMap<String, u16>,
    root: &Path,
) -> Vec<String> {
    let (cluster, ids) = start(server, specs, root);
    let mut session = Session {
        endpoints: specs.iter().map(MemberSpec::endpoint).collect(),
        peer_ports: peer_ports.clone(),
        ids,
    };
    let lines = session.run();
    drop(cluster);
    lines
}

#[test]
fn etcdctl_membership_and_status_print_the_same_for_detcd_as_for_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<MemberSpec> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| MemberSpec::new(dir.path(), name))
        .collect();
    let peer_ports: BTreeMap<String, u16> = UNSTARTED
        .iter()
        .map(|name| (name.to_string(), common::free_port()))
        .chain(specs.iter().map(|spec| (spec.name.clone(), spec.peer_port)))
        .collect();
    let expected = transcript(Server::Etcd, &specs, &peer_ports, &dir.path().join("etcd"));
    let actual = transcript(
        Server::Detcd,
        &specs,
        &peer_ports,
        &dir.path().join("detcd"),
    );
    assert_same_transcripts(&expected, &actual);
}

#[test]
fn masking_names_ids_and_sorts_members() {
    let mut ids = BTreeMap::new();
    ids.insert("n1".to_string(), Id::new(0xab));
    ids.insert("n2".to_string(), Id::new(0x10));
    let session = Session {
        endpoints: Vec::new(),
        peer_ports: BTreeMap::new(),
        ids,
    };
    assert_eq!(
        session.mask(
            "10, n2, http://127.0.0.1:2\nab, n1, http://127.0.0.1:1\n",
            &[]
        ),
        "<n1>, n1, http://127.0.0.1:1\n<n2>, n2, http://127.0.0.1:2\n"
    );
    assert_eq!(
        session.mask(
            "{\"raft_term\":7,\"members\":[{\"ID\":16},{\"ID\":171}]}",
            &[]
        ),
        "{\"raft_term\":<masked>,\"members\":[{\"ID\":<n1>},{\"ID\":<n2>}]}\n"
    );
    assert_eq!(
        session.mask(
            "127.0.0.1:1, ab, 3.4.23, 20 kB, true, false, 2, 8, 8, \n",
            STATUS_FIELDS
        ),
        "127.0.0.1:1, <n1>, <masked>, <masked>, true, false, <masked>, <masked>, <masked>, \n"
    );
}
