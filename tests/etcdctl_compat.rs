//! Runs one etcdctl session against the real etcd 3.4 (Debian's `etcd-server`) and against detcd,
//! and requires the same output, byte for byte, once the ids that differ by nature (cluster id,
//! member id) are masked. This is what "works with etcdctl unchanged" means.
#![cfg(not(madsim))]

mod common;

use common::{assert_same_session, drop_client_logs, etcdctl_with_stdin, mask_ids, Node};

/// One etcdctl call: arguments, and stdin for `txn`.
struct Step {
    args: &'static [&'static str],
    stdin: Option<&'static str>,
}

const fn run(args: &'static [&'static str]) -> Step {
    Step { args, stdin: None }
}

const SESSION: &[Step] = &[
    run(&["put", "foo", "bar"]),
    run(&["put", "foo2", "bar2"]),
    run(&["put", "foo3", "bar3"]),
    run(&["put", "fop", "x"]),
    run(&["put", "zoo", "z"]),
    run(&["put", "foo", "bar-again"]),
    run(&["get", "foo"]),
    run(&["get", "foo", "--prefix"]),
    run(&["get", "foo", "foo3"]),
    run(&["get", "foo", "--prefix", "--limit", "2"]),
    run(&["get", "foo", "--prefix", "--limit", "2", "-w", "json"]),
    run(&[
        "get",
        "f",
        "--prefix",
        "--sort-by=MODIFY",
        "--order=DESCEND",
    ]),
    run(&[
        "get",
        "f",
        "--prefix",
        "--sort-by=VALUE",
        "--order=ASCEND",
        "--limit=2",
    ]),
    run(&["get", "f", "--prefix", "--sort-by=CREATE"]),
    run(&[
        "get",
        "f",
        "--prefix",
        "--sort-by=VERSION",
        "--order=DESCEND",
    ]),
    run(&["get", "f", "--prefix", "--keys-only"]),
    run(&["get", "f", "--prefix", "--print-value-only"]),
    run(&["get", "f", "--prefix", "--keys-only", "-w", "json"]),
    run(&["get", "foo2", "--from-key"]),
    run(&["get", "foo2", "--from-key", "--keys-only", "--limit=1"]),
    run(&["get", "foo", "--rev", "2"]),
    run(&["get", "foo", "--rev", "2", "-w", "json"]),
    run(&["get", "foo", "-w", "fields"]),
    run(&["get", "nothing-here"]),
    run(&["get", "nothing-here", "-w", "json"]),
    run(&["put", "foo", "bar-3", "--prev-kv"]),
    run(&["put", "foo", "bar-4", "--prev-kv", "-w", "json"]),
    run(&["del", "foo2", "--prev-kv"]),
    run(&["del", "missing"]),
    run(&["del", "fo", "--prefix"]),
    run(&["get", "", "--from-key"]),
    Step {
        args: &["txn"],
        stdin: Some("value(\"zoo\") = \"z\"\n\nput t1 success\nget zoo\n\nput t1 failure\n\n"),
    },
    Step {
        args: &["txn", "-w", "json"],
        stdin: Some("mod(\"zoo\") > \"100\"\n\nput t2 success\n\nput t2 failure\nget t1\n\n"),
    },
    Step {
        args: &["txn"],
        stdin: Some("version(\"t1\") = \"1\"\ncreate(\"zoo\") < \"6\"\n\ndel t1\n\nput t3 no\n\n"),
    },
    run(&["get", "", "--from-key", "-w", "json"]),
    run(&["compaction", "5"]),
    run(&["get", "foo", "--rev", "4"]),
    run(&["get", "zoo", "--rev", "5"]),
    run(&["get", "zoo", "--rev", "1000"]),
    run(&["compaction", "3"]),
    run(&["put", "", "empty-key"]),
    run(&["get", "zoo", "--consistency=s"]),
];

const fn with_stdin(args: &'static [&'static str], stdin: &'static str) -> Step {
    Step {
        args,
        stdin: Some(stdin),
    }
}

/// Users, roles and permissions (single key, prefix, from-key), auth enable and disable, a
/// wrong password, a user refused, a revoked permission refusing at once, a changed password.
const AUTH_SESSION: &[Step] = &[
    run(&["user", "add", "root:rootpw"]),
    run(&["user", "add", "alice:alicepw"]),
    run(&["user", "add", "alice:again"]),
    run(&["user", "add", "bob", "--no-password"]),
    run(&["user", "list"]),
    run(&["user", "get", "alice"]),
    run(&["user", "get", "nobody"]),
    run(&["role", "add", "reader"]),
    run(&["role", "add", "reader"]),
    run(&["role", "add", ""]),
    run(&["role", "grant-permission", "reader", "read", "/a"]),
    run(&[
        "role",
        "grant-permission",
        "reader",
        "readwrite",
        "/p",
        "--prefix",
    ]),
    run(&[
        "role",
        "grant-permission",
        "reader",
        "write",
        "/f",
        "--from-key",
    ]),
    run(&["role", "grant-permission", "nobody", "read", "/a"]),
    run(&["role", "get", "reader"]),
    run(&["role", "get", "nobody"]),
    run(&["role", "list"]),
    run(&["user", "grant-role", "alice", "reader"]),
    run(&["user", "grant-role", "alice", "nobody"]),
    run(&["user", "grant-role", "nobody", "reader"]),
    run(&["user", "get", "alice", "--detail"]),
    run(&["put", "/a", "before"]),
    run(&["auth", "enable"]),
    run(&["get", "/a"]),
    run(&["--user", "alice:wrong", "get", "/a"]),
    run(&["--user", "nobody:pw", "get", "/a"]),
    run(&["--user", "alice:alicepw", "get", "/a"]),
    run(&["--user", "alice:alicepw", "put", "/a", "no"]),
    run(&["--user", "alice:alicepw", "put", "/p/x", "1"]),
    run(&["--user", "alice:alicepw", "put", "/zz", "1"]),
    run(&["--user", "alice:alicepw", "get", "/zz"]),
    run(&["--user", "alice:alicepw", "get", "/p", "--prefix"]),
    run(&["--user", "alice:alicepw", "get", "", "--from-key"]),
    run(&[
        "--user",
        "alice:alicepw",
        "del",
        "/p",
        "--prefix",
        "--prev-kv",
    ]),
    run(&["--user", "alice:alicepw", "put", "/p/y", "2"]),
    with_stdin(
        &["--user", "alice:alicepw", "txn"],
        "value(\"/p/y\") = \"2\"\n\nput /p/z 3\n\nput /b 4\n\n",
    ),
    with_stdin(
        &["--user", "alice:alicepw", "txn"],
        "value(\"/p/y\") = \"2\"\n\nput /p/z 3\nget /a\n\nput /zz 4\n\n",
    ),
    with_stdin(
        &["--user", "alice:alicepw", "txn"],
        "value(\"/zz\") = \"1\"\n\nput /p/z 3\n\n\n",
    ),
    run(&["--user", "alice:alicepw", "watch", "/zz"]),
    run(&["--user", "alice:alicepw", "user", "list"]),
    run(&["--user", "alice:alicepw", "user", "get", "alice"]),
    run(&["--user", "alice:alicepw", "user", "get", "root"]),
    run(&["--user", "alice:alicepw", "role", "get", "reader"]),
    run(&["--user", "alice:alicepw", "role", "add", "mine"]),
    run(&["--user", "alice:alicepw", "member", "remove", "1234"]),
    run(&["--user", "root:rootpw", "get", "/a"]),
    run(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "reader",
        "/p",
        "--prefix",
    ]),
    run(&["--user", "alice:alicepw", "get", "/p/y"]),
    run(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "reader",
        "/p",
        "--prefix",
    ]),
    run(&[
        "--user",
        "root:rootpw",
        "user",
        "revoke-role",
        "alice",
        "reader",
    ]),
    run(&[
        "--user",
        "root:rootpw",
        "user",
        "revoke-role",
        "alice",
        "reader",
    ]),
    run(&["--user", "alice:alicepw", "get", "/a"]),
    run(&["--user", "root:rootpw", "user", "delete", "root"]),
    run(&["--user", "root:rootpw", "role", "delete", "root"]),
    run(&[
        "--user",
        "root:rootpw",
        "user",
        "revoke-role",
        "root",
        "root",
    ]),
    with_stdin(
        &[
            "--user",
            "root:rootpw",
            "user",
            "passwd",
            "alice",
            "--interactive=false",
        ],
        "newpw\n",
    ),
    run(&["--user", "alice:alicepw", "get", "/a"]),
    run(&[
        "--user",
        "root:rootpw",
        "user",
        "grant-role",
        "alice",
        "reader",
    ]),
    run(&["--user", "alice:newpw", "get", "/a"]),
    run(&["--user", "bob:", "get", "/a"]),
    run(&["--user", "root:rootpw", "auth", "enable"]),
    run(&["--user", "root:rootpw", "auth", "disable"]),
    run(&["auth", "disable"]),
    run(&["get", "/", "--prefix"]),
    run(&["role", "delete", "reader"]),
    run(&["user", "get", "alice"]),
    run(&["user", "delete", "alice"]),
    run(&["user", "delete", "alice"]),
    run(&["user", "list"]),
];

/// Runs a session; each step's exit status, stdout and stderr, with ids masked.
fn transcript_of(session: &[Step], node: &Node) -> Vec<String> {
    session
        .iter()
        .map(|step| {
            let output = etcdctl_with_stdin(&node.endpoint(), step.args, step.stdin.unwrap_or(""));
            format!(
                "$ etcdctl {}\nexit: {:?}\n{}{}",
                step.args.join(" "),
                output.status.code(),
                mask_ids(&String::from_utf8_lossy(&output.stdout)),
                mask_ids(&drop_client_logs(&String::from_utf8_lossy(&output.stderr))),
            )
        })
        .collect()
}

#[test]
fn etcdctl_prints_the_same_for_detcd_as_for_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    assert_same_session(dir.path(), |node| transcript_of(SESSION, node));
}

#[test]
fn etcdctl_user_role_and_auth_commands_print_the_same_as_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    assert_same_session(dir.path(), |node| transcript_of(AUTH_SESSION, node));
}

#[test]
fn masking_hides_only_ids() {
    assert_eq!(
        mask_ids("{\"cluster_id\":123,\"member_id\":45,\"revision\":6}"),
        "{\"cluster_id\":<id>,\"member_id\":<id>,\"revision\":6}"
    );
}
