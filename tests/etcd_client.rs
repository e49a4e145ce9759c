//! Drives detcd with the `etcd-client` crate, the Rust client people use against etcd.
#![cfg(not(madsim))]

mod common;

use common::Node;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp,
};

#[tokio::test]
async fn kv_round_trip_through_the_etcd_client_crate() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("n1.etcd"), &[]);
    let mut client = Client::connect([node.url()], None).await.unwrap();

    let put = client.put("a", "1", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), 2);
    client.put("b", "2", None).await.unwrap();
    let put = client
        .put("a", "3", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(put.prev_key().unwrap().value(), b"1");

    let got = client.get("a", None).await.unwrap();
    let kv = &got.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.version(),
            kv.create_revision(),
            kv.mod_revision()
        ),
        (&b"3"[..], 2, 2, 4)
    );

    let sorted = client
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_from_key()
                    .with_sort(SortTarget::Value, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let values: Vec<&[u8]> = sorted.kvs().iter().map(|kv| kv.value()).collect();
    assert_eq!(values, vec![&b"3"[..], &b"2"[..]]);

    let old = client
        .get("a", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap();
    assert_eq!(old.kvs()[0].value(), b"1");

    let txn = Txn::new()
        .when([Compare::value("a", CompareOp::Equal, "3")])
        .and_then([TxnOp::put("c", "from-txn", None)])
        .or_else([TxnOp::get("a", None)]);
    let response = client.txn(txn).await.unwrap();
    assert!(response.succeeded());
    let txn = Txn::new()
        .when([Compare::version("c", CompareOp::Greater, 5)])
        .and_then([TxnOp::delete("c", None)])
        .or_else([TxnOp::get("c", None)]);
    let response = client.txn(txn).await.unwrap();
    assert!(!response.succeeded());

    let deleted = client
        .delete(
            "",
            Some(DeleteOptions::new().with_from_key().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), 3);
    assert_eq!(deleted.prev_kvs().len(), 3);

    client.compact(4, None).await.unwrap();
    let error = client
        .get("a", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{error}"
    );
    let error = client
        .get("a", Some(GetOptions::new().with_revision(1000)))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("required revision is a future revision"),
        "{error}"
    );

    let status = client.status().await.unwrap();
    assert_eq!(status.leader(), status.header().unwrap().member_id());
    let members = client.member_list().await.unwrap();
    assert_eq!(members.members().len(), 1);
    assert_eq!(members.members()[0].name(), "n1");
}
