use super::*;

fn bucket(name: &str, entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Bucket {
    Bucket {
        name: name.into(),
        entries: entries.into_iter().collect(),
    }
}

fn numbered(count: u32, value_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..count)
        .map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; value_len]))
        .collect()
}

#[test]
fn a_written_database_reads_back_the_same() {
    let buckets = vec![
        bucket("empty", []),
        bucket("key", numbered(20_000, 10)),
        bucket("small", [(b"a".to_vec(), b"1".to_vec())]),
    ];
    let file = write(&buckets);
    assert_eq!(file.len() % 4096, 0);
    let database = read(&file).unwrap();
    assert_eq!(database.buckets, buckets);
    assert_eq!(database.size_bytes, file.len() as u64);
    assert_eq!(database.bucket(b"small"), Some(&buckets[2]));
}

#[test]
fn values_and_keys_larger_than_a_page_spill_into_overflow_pages() {
    let buckets = vec![bucket(
        "big",
        (0..6u8).map(|i| (vec![i; 5000], vec![i; 9000])),
    )];
    let file = write(&buckets);
    assert_eq!(read(&file).unwrap().buckets, buckets);
}

#[test]
fn a_damaged_meta_page_falls_back_to_the_other() {
    let buckets = vec![bucket("k", numbered(10, 3))];
    let mut file = write(&buckets);
    file[16 + 20] ^= 0x40; // meta 0's root pgid
    assert_eq!(read(&file).unwrap().buckets, buckets);
    file[4096 + 16 + 20] ^= 0x40;
    let error = read(&file).unwrap_err();
    assert!(error.contains("checksum error"), "{error}");
}

#[test]
fn every_truncation_is_refused() {
    let file = write(&[bucket("k", numbered(300, 20))]);
    for len in (0..file.len()).step_by(97) {
        assert!(read(&file[..len]).is_err(), "cut to {len} bytes");
    }
}

#[test]
fn a_page_referenced_twice_is_refused() {
    let file = write(&[bucket("a", numbered(1, 1)), bucket("b", numbered(1, 1))]);
    // Pages: 0-1 meta, 2 freelist, 3 bucket a, 4 bucket b, 5 root. Point b's header at page 3.
    let mut damaged = file.clone();
    let root = &mut damaged[5 * 4096..6 * 4096];
    let at = root
        .windows(9)
        .position(|w| w == [b'b', 4, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    root[at + 1] = 3;
    let error = read(&damaged).unwrap_err();
    assert!(error.contains("page 3: multiple references"), "{error}");
}
