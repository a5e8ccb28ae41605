//! Downloads on the local backend: large reads, exact bytes for every range (also over the
//! boundary between two reads), and the same answers as before for what cannot be read.

use bytes::Bytes;
use futures::StreamExt;
use yatai_domain::Error;
use yatai_store::objects::LOCAL_READ_SIZE;
use yatai_store::{ObjectStorage, ObjectStorageConfig};

/// Bytes that differ at every offset in a 251-byte cycle (a wrong offset shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn storage(dir: &tempfile::TempDir) -> ObjectStorage {
    ObjectStorage::open(&ObjectStorageConfig::Local {
        root: dir.path().join("objects"),
    })
    .await
    .unwrap()
}

async fn read(
    store: &ObjectStorage,
    key: &str,
    range: Option<std::ops::Range<u64>>,
) -> (Vec<u8>, Vec<usize>, std::ops::Range<u64>, u64) {
    let reader = store.get(key, range).await.unwrap();
    let mut stream = reader.stream;
    let (mut bytes, mut chunks) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks.push(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (bytes, chunks, reader.range, reader.total_size)
}

#[tokio::test]
async fn local_downloads_read_large_chunks_and_exact_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let data = pattern(2 * LOCAL_READ_SIZE + LOCAL_READ_SIZE / 2 + 7);
    let body = futures::stream::iter(
        data.chunks(100_000)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let stored = store.put_stream("bentos/o/r/v/k", body).await.unwrap();
    assert_eq!(stored.size, data.len() as u64);

    let (bytes, chunks, range, total) = read(&store, "bentos/o/r/v/k", None).await;
    assert_eq!(total, data.len() as u64);
    assert_eq!(range, 0..data.len() as u64);
    assert!(bytes == data, "the whole object comes back as stored");
    assert_eq!(
        chunks,
        [LOCAL_READ_SIZE, LOCAL_READ_SIZE, LOCAL_READ_SIZE / 2 + 7],
        "read in chunks of LOCAL_READ_SIZE, not 8 KiB"
    );

    let n = LOCAL_READ_SIZE as u64;
    for r in [
        n - 5..n + 5,
        n - 1..2 * n + 1,
        0..1,
        n..n + 1,
        3..2 * n,
        2 * n + 3..data.len() as u64,
    ] {
        let (bytes, _, range, total) = read(&store, "bentos/o/r/v/k", Some(r.clone())).await;
        assert_eq!(range, r);
        assert_eq!(total, data.len() as u64);
        assert!(
            bytes == data[r.start as usize..r.end as usize],
            "range {r:?} comes back exact"
        );
    }
    // A range past the end is cut at the end, as object_store does.
    let end = data.len() as u64;
    let (bytes, _, range, _) = read(&store, "bentos/o/r/v/k", Some(end - 3..end + 100)).await;
    assert_eq!(range, end - 3..end);
    assert!(bytes == data[data.len() - 3..]);
    // One that starts past it is refused.
    assert!(store
        .get("bentos/o/r/v/k", Some(end..end + 1))
        .await
        .is_err());
}

#[tokio::test]
async fn local_downloads_of_missing_or_shrunk_objects_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    assert!(matches!(
        store.get("bentos/o/r/v/missing", None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.get("bentos/o/r/v", None).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.size("bentos/o/r/v/missing").await.unwrap(), None);
    let data = pattern(LOCAL_READ_SIZE + 10);
    store
        .put_stream(
            "bentos/o/r/v/k",
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]),
        )
        .await
        .unwrap();
    let reader = store.get("bentos/o/r/v/k", None).await.unwrap();
    // The file loses its end after the download started: the stream ends with an error, not
    // with fewer bytes than the announced length.
    let path = dir.path().join("objects/bentos/o/r/v/k");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let results: Vec<Result<Bytes, Error>> = reader.stream.collect().await;
    assert!(
        results.last().is_some_and(|r| r.is_err()),
        "a short file ends the stream with an error"
    );
}

fn body(b: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    futures::stream::iter(
        b.chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn local_multipart_parts_land_in_place_and_complete_is_a_rename() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/joined";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(3 * LOCAL_READ_SIZE + 11);
    let pieces: Vec<&[u8]> = data.chunks(LOCAL_READ_SIZE + 5).collect();
    let len = |i: usize| Some(pieces[i].len() as u64);
    // Parts arrive out of order, each with its length; the third is missing at first.
    let e2 = store
        .put_local_part(&id, 2, len(1), body(pieces[1]))
        .await
        .unwrap();
    let e1 = store
        .put_local_part(&id, 1, len(0), body(pieces[0]))
        .await
        .unwrap();
    let parts = |e3: &str| vec![(2, e2.clone()), (1, e1.clone()), (3, e3.to_string())];
    assert!(matches!(
        store.complete_multipart(key, &id, parts("\"x\"")).await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(store.size(key).await.unwrap(), None, "nothing appears");
    let e3 = store
        .put_local_part(&id, 3, len(2), body(pieces[2]))
        .await
        .unwrap();
    let in_place = dir.path().join(format!("objects/.uploads/{id}/data"));
    let inode = std::fs::metadata(&in_place).unwrap().ino();
    store
        .complete_multipart(key, &id, parts(&e3))
        .await
        .unwrap();
    let (bytes, _, _, total) = read(&store, key, None).await;
    assert_eq!(total, data.len() as u64);
    assert!(bytes == data, "the parts are joined in part-number order");
    let object = dir.path().join(format!("objects/{key}"));
    assert_eq!(
        std::fs::metadata(object).unwrap().ino(),
        inode,
        "the parts were written in place: completing renamed them, it copied nothing"
    );
    assert!(
        store.local_multipart_ids().await.unwrap().is_empty(),
        "no part is left behind"
    );
    assert!(
        store
            .stale_staging_files(std::time::Duration::ZERO)
            .is_empty(),
        "no staging file is left behind"
    );
}

#[tokio::test]
async fn local_multipart_parts_of_other_sizes_or_without_a_length_are_copied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/mixed";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(2 * LOCAL_READ_SIZE + 3 * 1000);
    let (a, rest) = data.split_at(LOCAL_READ_SIZE);
    let (b, rest) = rest.split_at(LOCAL_READ_SIZE);
    let (c, d) = rest.split_at(1000);
    // The short last part comes first and fixes a small part size: the big parts do not fit it.
    let e4 = store
        .put_local_part(&id, 4, Some(d.len() as u64), body(d))
        .await
        .unwrap();
    let e1 = store
        .put_local_part(&id, 1, Some(a.len() as u64), body(a))
        .await
        .unwrap();
    let e2 = store.put_local_part(&id, 2, None, body(b)).await.unwrap();
    // A part sent again replaces what was there (first apart, then in place).
    store
        .put_local_part(&id, 3, None, body(&a[..1000]))
        .await
        .unwrap();
    let e3 = store
        .put_local_part(&id, 3, Some(c.len() as u64), body(c))
        .await
        .unwrap();
    // A body shorter than its declared length is refused.
    assert!(store
        .put_local_part(&id, 5, Some(10_000), body(&d[..10]))
        .await
        .is_err());
    let parts = vec![(1, e1), (2, e2), (3, e3), (4, e4)];
    store.complete_multipart(key, &id, parts).await.unwrap();
    let (bytes, _, _, total) = read(&store, key, None).await;
    assert_eq!(total, data.len() as u64);
    assert!(bytes == data, "every part in part-number order");
    assert!(store
        .stale_staging_files(std::time::Duration::ZERO)
        .is_empty());
}

#[tokio::test]
async fn one_part_is_written_by_one_request_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let id = store.create_multipart("models/o/r/v/busy").await.unwrap();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let first = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.put_local_part(&id, 1, Some(6), rx).await })
    };
    futures::SinkExt::send(&mut tx, Ok(Bytes::from_static(b"abc")))
        .await
        .unwrap();
    // The first request is still sending part 1: a second one is refused, another part is not.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(matches!(
        store.put_local_part(&id, 1, Some(3), body(b"xyz")).await,
        Err(Error::Conflict(_))
    ));
    let e2 = store
        .put_local_part(&id, 2, Some(3), body(b"def"))
        .await
        .unwrap();
    // Nor is the upload completed while a part is being written into it.
    assert!(matches!(
        store
            .complete_multipart("models/o/r/v/busy", &id, vec![(2, e2.clone())])
            .await,
        Err(Error::Conflict(_))
    ));
    futures::SinkExt::send(&mut tx, Ok(Bytes::from_static(b"abc")))
        .await
        .unwrap();
    drop(tx);
    first.await.unwrap().unwrap();
    // Once it ended, the part may be sent again; the upload is completed with its last ETag.
    let stale = store
        .put_local_part(&id, 1, Some(6), body(b"abcabc"))
        .await
        .unwrap();
    let e1 = store
        .put_local_part(&id, 1, Some(6), body(b"ABCABC"))
        .await
        .unwrap();
    assert_ne!(stale, e1);
    let key = "models/o/r/v/busy";
    assert!(matches!(
        store
            .complete_multipart(key, &id, vec![(1, stale), (2, e2.clone())])
            .await,
        Err(Error::InvalidArgument(_))
    ));
    store
        .complete_multipart(key, &id, vec![(1, e1), (2, e2)])
        .await
        .unwrap();
    assert_eq!(read(&store, key, None).await.0, b"ABCABCdef");
    // A part sent after completion never reaches the served object.
    let _ = store.put_local_part(&id, 1, Some(6), body(b"zzzzzz")).await;
    assert_eq!(read(&store, key, None).await.0, b"ABCABCdef");
}

/// A gate that lets every PUT put its object in place.
async fn open_gate() -> Result<(), Error> {
    Ok(())
}

/// Puts a copy of the object `key` in its place, as another writer of the directory could.
fn replace_behind_its_back(dir: &tempfile::TempDir, key: &str) {
    let object = dir.path().join(format!("objects/{key}"));
    let copy = dir.path().join("copy");
    std::fs::copy(&object, &copy).unwrap();
    std::fs::rename(&copy, &object).unwrap();
}

/// The hash kept for `key`'s check, if any (and the object is there to read).
async fn prefix_of(store: &ObjectStorage, key: &str) -> Option<yatai_archive::Sha256Meter> {
    store.kept_hash(key).await.unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Waits until the follower of `id` has hashed `want` bytes (it runs on the blocking pool).
async fn hashed(store: &ObjectStorage, id: &str, want: u64) {
    for _ in 0..500 {
        if store.hashed_so_far(id) == Some(want) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "the parts were not hashed as they arrived: {:?} of {want} bytes after 5 s",
        store.hashed_so_far(id)
    );
}

/// Three parts of `LOCAL_READ_SIZE + 5` bytes and a short last one, as `(number, bytes)`.
fn four_parts(data: &[u8]) -> Vec<(u16, &[u8])> {
    data.chunks(LOCAL_READ_SIZE + 5)
        .enumerate()
        .map(|(i, c)| (i as u16 + 1, c))
        .collect()
}

async fn put(store: &ObjectStorage, id: &str, n: u16, b: &[u8]) -> (u16, String) {
    let etag = store
        .put_local_part(id, n, Some(b.len() as u64), body(b))
        .await
        .unwrap();
    (n, etag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_multipart_parts_are_hashed_in_order_as_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/followed";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(3 * (LOCAL_READ_SIZE + 5) + 77);
    let parts = four_parts(&data);
    // Out of order: nothing can be hashed before part 1 is there, then parts 1 to 3 at once.
    let mut listed = vec![put(&store, &id, 3, parts[2].1).await];
    listed.push(put(&store, &id, 2, parts[1].1).await);
    listed.push(put(&store, &id, 1, parts[0].1).await);
    hashed(&store, &id, 3 * (LOCAL_READ_SIZE as u64 + 5)).await;
    listed.push(put(&store, &id, 4, parts[3].1).await);
    hashed(&store, &id, data.len() as u64).await;
    store.complete_multipart(key, &id, listed).await.unwrap();
    let prefix = prefix_of(&store, key)
        .await
        .expect("the hash of the whole upload is kept for the check");
    assert_eq!(prefix.len(), data.len() as u64);
    assert_eq!(prefix.finish_hex(), sha256_hex(&data));
    assert!(prefix_of(&store, key).await.is_none(), "it is given once");
    assert_eq!(
        store.hashed_so_far(&id),
        None,
        "the upload is no longer followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_sent_again_after_it_was_hashed_voids_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/resent";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(3 * (LOCAL_READ_SIZE + 5) + 77);
    let parts = four_parts(&data);
    let mut listed = Vec::new();
    for (n, b) in &parts {
        listed.push(put(&store, &id, *n, b).await);
    }
    hashed(&store, &id, data.len() as u64).await;
    // Part 2 again, with other bytes of the same length: the object is not what was hashed.
    let other: Vec<u8> = parts[1].1.iter().map(|b| b ^ 0xff).collect();
    listed[1] = put(&store, &id, 2, &other).await;
    assert_eq!(store.hashed_so_far(&id), None);
    store.complete_multipart(key, &id, listed).await.unwrap();
    assert!(
        prefix_of(&store, key).await.is_none(),
        "a hash of bytes that were written over is not the object's"
    );
    let (bytes, ..) = read(&store, key, None).await;
    assert_eq!(&bytes[LOCAL_READ_SIZE + 5..][..other.len()], &other[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_sent_again_before_it_was_hashed_keeps_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/early-resend";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(2 * (LOCAL_READ_SIZE + 5) + 77);
    let parts = four_parts(&data);
    // Part 2 twice before part 1 arrived: nothing of it was hashed, so nothing is lost.
    let junk = vec![0u8; parts[1].1.len()];
    put(&store, &id, 2, &junk).await;
    let mut listed = vec![put(&store, &id, 2, parts[1].1).await];
    listed.push(put(&store, &id, 1, parts[0].1).await);
    listed.push(put(&store, &id, 3, parts[2].1).await);
    hashed(&store, &id, data.len() as u64).await;
    store.complete_multipart(key, &id, listed).await.unwrap();
    let prefix = prefix_of(&store, key).await.expect("the hash is kept");
    assert_eq!(prefix.finish_hex(), sha256_hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_written_by_another_process_or_apart_voids_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let data = pattern(2 * (LOCAL_READ_SIZE + 5) + 77);
    let parts = four_parts(&data);

    // Another server on the same directory left its mark: its writes are not in our records.
    let key = "models/o/r/v/foreign";
    let id = store.create_multipart(key).await.unwrap();
    let mut listed = Vec::new();
    for (n, b) in &parts {
        listed.push(put(&store, &id, *n, b).await);
    }
    hashed(&store, &id, data.len() as u64).await;
    let upload = dir.path().join(format!("objects/.uploads/{id}"));
    let marks = || {
        std::fs::read_dir(&upload)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("writer.")
            })
            .count()
    };
    assert_eq!(
        marks(),
        1,
        "this process marked the upload once, for all its parts"
    );
    std::fs::write(upload.join("writer.1-00000000000000ff"), b"").unwrap();
    store.complete_multipart(key, &id, listed).await.unwrap();
    assert!(prefix_of(&store, key).await.is_none());

    // A part without a length is stored apart: the object is a copy, not the hashed file.
    let key = "models/o/r/v/apart";
    let id = store.create_multipart(key).await.unwrap();
    let mut listed = vec![put(&store, &id, 1, parts[0].1).await];
    let e2 = store
        .put_local_part(&id, 2, None, body(parts[1].1))
        .await
        .unwrap();
    listed.push((2, e2));
    listed.push(put(&store, &id, 3, parts[2].1).await);
    store.complete_multipart(key, &id, listed).await.unwrap();
    assert!(prefix_of(&store, key).await.is_none());
    assert_eq!(read(&store, key, None).await.0, data);

    // An object replaced after completion is not the file that was hashed.
    let key = "models/o/r/v/replaced";
    let id = store.create_multipart(key).await.unwrap();
    let mut listed = Vec::new();
    for (n, b) in &parts {
        listed.push(put(&store, &id, *n, b).await);
    }
    hashed(&store, &id, data.len() as u64).await;
    store.complete_multipart(key, &id, listed).await.unwrap();
    replace_behind_its_back(&dir, key);
    assert!(prefix_of(&store, key).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_is_no_longer_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/aborted";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(LOCAL_READ_SIZE);
    put(&store, &id, 1, &data).await;
    hashed(&store, &id, data.len() as u64).await;
    store.abort_multipart(key, &id).await.unwrap();
    assert_eq!(store.hashed_so_far(&id), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_put_is_hashed_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/single";
    let data = pattern(3 * LOCAL_READ_SIZE + 11);
    store
        .put_with_etag(key, body(&data), open_gate)
        .await
        .unwrap();
    let hash = prefix_of(&store, key)
        .await
        .expect("the PUT's hash is kept");
    assert_eq!(hash.len(), data.len() as u64);
    assert_eq!(hash.finish_hex(), sha256_hex(&data));
    assert!(prefix_of(&store, key).await.is_none(), "it is given once");

    // A second PUT to the same URL: the hash kept is the one of the bytes in place.
    let other: Vec<u8> = data.iter().map(|b| b ^ 0x0f).collect();
    store
        .put_with_etag(key, body(&data), open_gate)
        .await
        .unwrap();
    store
        .put_with_etag(key, body(&other), open_gate)
        .await
        .unwrap();
    assert_eq!(
        prefix_of(&store, key).await.unwrap().finish_hex(),
        sha256_hex(&other)
    );

    // The object replaced by another file (even with the same bytes): not what was hashed.
    store
        .put_with_etag(key, body(&data), open_gate)
        .await
        .unwrap();
    replace_behind_its_back(&dir, key);
    assert!(prefix_of(&store, key).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_object_is_never_replaced_by_another_completion() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/once";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(2 * (LOCAL_READ_SIZE + 5) + 77);
    let mut listed = Vec::new();
    for (n, b) in four_parts(&data) {
        listed.push(put(&store, &id, n, b).await);
    }
    hashed(&store, &id, data.len() as u64).await;
    store.complete_multipart(key, &id, listed).await.unwrap();
    // The upload's parts are gone with its completion; parts sent again to its URLs make a
    // new set, in place or apart, which cannot become the object any more.
    let other = vec![7u8; data.len()];
    for apart in [false, true] {
        let mut listed = Vec::new();
        for (n, b) in four_parts(&other) {
            let etag = store
                .put_local_part(&id, n, (!apart).then_some(b.len() as u64), body(b))
                .await
                .unwrap();
            listed.push((n, etag));
        }
        assert!(matches!(
            store.complete_multipart(key, &id, listed).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(read(&store, key, None).await.0, data, "apart: {apart}");
    }
    let prefix = prefix_of(&store, key)
        .await
        .expect("the first completion's hash is kept");
    assert_eq!(prefix.finish_hex(), sha256_hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_refused_at_its_gate_leaves_the_object_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let key = "models/o/r/v/gated";
    let data = pattern(LOCAL_READ_SIZE + 3);
    store
        .put_with_etag(key, body(&data), open_gate)
        .await
        .unwrap();
    let refused = store
        .put_with_etag(key, body(&[1u8; 1000]), || async {
            Err::<(), _>(Error::Forbidden("the upload has ended".into()))
        })
        .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    assert_eq!(
        read(&store, key, None).await.0,
        data,
        "the object is unchanged"
    );
    assert!(
        store
            .stale_staging_files(std::time::Duration::ZERO)
            .is_empty(),
        "the refused bytes are gone"
    );
    // The gate's answer is held until the object is in place.
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let h = held.clone();
    store
        .put_with_etag(
            key,
            body(b"abc"),
            || async move { Ok(h.lock_owned().await) },
        )
        .await
        .unwrap();
    assert!(
        held.try_lock().is_ok(),
        "released once the object is in place"
    );
    assert_eq!(read(&store, key, None).await.0, b"abc");
}

/// A body whose first poll (the server starting to read it) shows in `polled`.
fn watched_body(
    b: &[u8],
    polled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    let mut rest = Some(Bytes::copy_from_slice(b));
    futures::stream::poll_fn(move |_| {
        polled.store(true, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(rest.take().map(Ok))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_far_ahead_of_the_hash_waits_for_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(storage(&dir).await);
    let key = "models/o/r/v/paced";
    let id = store.create_multipart(key).await.unwrap();
    let data = pattern(4 * (LOCAL_READ_SIZE + 5));
    let parts = four_parts(&data);
    // Parts 1 to 3 may be written before the hash reaches them; part 4 is two parts past the
    // one the hash is in (part 1), so its body is not read yet.
    let mut listed = vec![put(&store, &id, 2, parts[1].1).await];
    let polled = std::sync::Arc::new(AtomicBool::new(false));
    let fourth = {
        let (store, id, polled) = (store.clone(), id.clone(), polled.clone());
        let bytes = parts[3].1.to_vec();
        tokio::spawn(async move {
            store
                .put_local_part(
                    &id,
                    4,
                    Some(bytes.len() as u64),
                    watched_body(&bytes, polled),
                )
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !polled.load(Ordering::SeqCst),
        "part 4 is held while the hash has not reached part 2"
    );
    // Part 1 arrives: the hash runs through parts 1 and 2, and part 4 goes on.
    listed.insert(0, put(&store, &id, 1, parts[0].1).await);
    listed.push(put(&store, &id, 3, parts[2].1).await);
    listed.push((4, fourth.await.unwrap().unwrap()));
    assert!(polled.load(Ordering::SeqCst));
    hashed(&store, &id, data.len() as u64).await;
    store.complete_multipart(key, &id, listed).await.unwrap();
    let prefix = prefix_of(&store, key)
        .await
        .expect("the whole upload was hashed");
    assert_eq!(prefix.finish_hex(), sha256_hex(&data));
    assert_eq!(read(&store, key, None).await.0, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_far_ahead_of_a_first_part_that_never_comes_is_not_held_for_long() {
    let dir = tempfile::tempdir().unwrap();
    let store = storage(&dir).await;
    let id = store
        .create_multipart("models/o/r/v/late-first")
        .await
        .unwrap();
    let data = pattern(10 * 1000);
    // Part 1 never comes: the hash does not move, pacing ends for the upload, and each part
    // is written (a deadlock guard, not a speed target).
    for (n, part) in data.chunks(1000).enumerate().skip(1).rev() {
        let written = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            put(&store, &id, n as u16 + 1, part),
        )
        .await;
        assert!(written.is_ok(), "part {} was held without end", n + 1);
    }
    assert_eq!(store.hashed_so_far(&id), Some(0));
}
