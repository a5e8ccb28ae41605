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
