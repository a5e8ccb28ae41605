//! The SHA-256 of a local multipart upload, started while its parts arrive.
//!
//! An archive's digest is one sequential pass, and the parts of a presigned upload arrive side
//! by side (BentoML and the bench put 10 at a time), so the archive can only be hashed in
//! order once it is whole, at `finish_upload`, a wait of about 0.6 s per GiB that a proxy
//! upload (hashed while it streams) does not have. This module hashes the leading bytes of
//! `data` (the parts written in place, see `local.rs`) as soon as each is written, on the
//! blocking pool, so that the check at finish hashes only what came after: the rest of the
//! last parts to arrive. Parts far ahead of the hash are held back ([`pace`]) so that they
//! arrive roughly in order and little is left. At finish, an uncompressed tar is walked by its
//! headers alone (`yatai_archive::inspect_file`), so what was hashed here is not read again.
//!
//! The hashed prefix is only used when it is certainly the object's prefix, which
//! [`take_at_complete`] decides under the exclusive lock that completing takes:
//! - every write of a part into `data` is recorded here with a **generation**, given before
//!   its first byte lands (`begin`), its progress after each batch lands (`wrote`) and its
//!   success after its record is written (`done`). The follower hashes a part's bytes below
//!   what its current generation has written (a writer writes each byte once, in order) and
//!   checks after reading that the generation is still the same. A part sent again starts a
//!   new generation, which discards the prefix if any of that part was hashed;
//! - every part the prefix covers must, at completion, still be written by the generation that
//!   was hashed, and that write must have succeeded;
//! - `data` must be the file that was hashed (same device and inode), and becomes the object
//!   itself (the in-place completion, a rename);
//! - no other process wrote a part of this upload: each write into `data` first leaves its
//!   process's mark (a file `writer.MARK`), and a mark that is not this process's discards the
//!   prefix (another server on the same directory is not seen by these records; a server of a
//!   version before this one leaves no mark, so two versions must not serve one directory).
//!
//! The check at finish reads the object through the file it compared with the kept hash
//! ([`take_prefix`] is given the open file's metadata), and an object made by a completion is
//! never replaced by another completion (`local.rs` links it into place), so what is hashed
//! and what is served are one file.
//!
//! Anything else (a restart, a part stored apart, too many uploads at once) means no prefix,
//! and finish hashes the whole object, as before. Nothing here is kept on disk but the writer marks.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use yatai_archive::Sha256Meter;

/// Uploads followed at once; a further one is not followed (its finish hashes it all). Each
/// holds a record per part (at most 10,000) while it runs.
const MAX_FOLLOWED: usize = 64;

/// Hashed prefixes of completed uploads waiting for their `finish_upload`; the oldest is
/// dropped beyond this (its finish then hashes the whole object).
const MAX_READY: usize = 256;

/// Bytes hashed between two looks at the records (a completion waits at most for this).
const STEP: u64 = 4 << 20;

/// Size of the reads of `data` by the follower.
const READ: usize = 256 << 10;

/// How long a completion waits for a running follower to put down its hash (one step of
/// [`STEP`] takes a few ms); past it, the upload's finish hashes it all.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Parts of an upload past the one being hashed that may be written while the hash keeps up
/// (see [`pace`]); further ones wait.
const AHEAD_PARTS: u64 = 2;

/// How often a held part looks at how fast the hash moves.
const PACE_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// The slowest the hash may move (bytes per second, in order: as fast as the part it is in
/// arrives) for parts to be held back; below it, pacing ends for the upload. Holding parts only
/// pays when the link is fast enough for the hash at finish to count (on a slow link, or with
/// a first part that is late or never sent, parallel streams matter more).
const PACE_MIN_RATE: u64 = 100 << 20;

/// The longest a part is held back, far below the write timeouts of clients (httpx's default
/// is 5 s, the bentoml CLI sets 10 hours, botocore 60 s, curl none).
const MAX_HELD: std::time::Duration = std::time::Duration::from_secs(3);

/// The files of a local upload that mark the processes which wrote into `data`: `writer.MARK`.
pub(super) const WRITER_MARK: &str = "writer.";

/// One write of a part into `data`.
#[derive(Debug, Clone, Copy)]
struct Progress {
    generation: u64,
    /// Bytes of the part this generation has written, from its start.
    written: u64,
    /// The write succeeded and its record is in place.
    done: bool,
}

struct Followed {
    dir: PathBuf,
    parts: HashMap<u16, Progress>,
    /// Parts the prefix covers (some or all of their bytes), with the generation hashed.
    hashed_parts: HashMap<u16, u64>,
    /// `None` while the follower holds it.
    hasher: Option<Sha256Meter>,
    hashed: u64,
    part_size: Option<u64>,
    /// Device and inode of the `data` that was hashed.
    file: Option<(u64, u64)>,
    broken: bool,
    running: bool,
    again: bool,
    stop: bool,
    /// Parts far ahead of the hash wait for it (see [`pace`]); off once a wait was in vain.
    paced: bool,
}

struct Ready {
    key: String,
    hasher: Sha256Meter,
    file: FileId,
    size: u64,
}

/// Which file an object is: its device, inode and modification time, read once the file is
/// as it will be served (after a single PUT's last write; after a completion trimmed `data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
}

impl FileId {
    pub(super) fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    fn is(&self, meta: &std::fs::Metadata) -> bool {
        *self == FileId::of(meta)
    }
}

#[derive(Default)]
struct Registry {
    followed: HashMap<String, Followed>,
    ready: VecDeque<Ready>,
    next_generation: u64,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
static IDLE: Condvar = Condvar::new();

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// This process's mark, the name of its `writer.MARK` files.
fn process_mark() -> &'static str {
    static MARK: OnceLock<String> = OnceLock::new();
    MARK.get_or_init(|| format!("{}-{:016x}", std::process::id(), rand::random::<u64>()))
}

/// Leaves this process's mark in the upload's directory (before a write into `data`): one
/// empty file per process, however many parts it writes.
pub(super) fn mark_writer(dir: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(format!("{WRITER_MARK}{}", process_mark())))
        .map(drop)
}

/// A write of part `n` of `upload_id` starts (`part_size`: the upload's, when the part goes
/// into `data`): its generation, or `None` when the upload is not followed. Any hashed byte of
/// the part is no longer the part's.
pub(super) fn begin(upload_id: &str, dir: &Path, n: u16, part_size: Option<u64>) -> Option<u64> {
    let mut r = registry();
    r.next_generation += 1;
    let generation = r.next_generation;
    if !r.followed.contains_key(upload_id) {
        if r.followed.len() >= MAX_FOLLOWED {
            return None;
        }
        r.followed.insert(
            upload_id.to_string(),
            Followed {
                dir: dir.to_path_buf(),
                parts: HashMap::new(),
                hashed_parts: HashMap::new(),
                hasher: Some(Sha256Meter::default()),
                hashed: 0,
                part_size: None,
                file: None,
                broken: false,
                running: false,
                again: false,
                stop: false,
                paced: true,
            },
        );
    }
    let f = r.followed.get_mut(upload_id)?;
    if f.hashed_parts.contains_key(&n) {
        f.broken = true;
        moved().notify_waiters();
    }
    if f.part_size.is_none() {
        f.part_size = part_size;
    }
    f.parts.insert(
        n,
        Progress {
            generation,
            written: 0,
            done: false,
        },
    );
    Some(generation)
}

/// Generation `generation` of part `n` has written its first `written` bytes.
pub(super) fn wrote(upload_id: &str, n: u16, generation: u64, written: u64) {
    if let Some(p) = current_write(&mut registry(), upload_id, n, generation) {
        p.written = p.written.max(written);
    }
    advance(upload_id);
}

/// Generation `generation` of part `n` succeeded (its record is written).
pub(super) fn done(upload_id: &str, n: u16, generation: u64) {
    if let Some(p) = current_write(&mut registry(), upload_id, n, generation) {
        p.done = true;
    }
}

/// The record of part `n`'s write `generation`, unless another write of the part began since.
fn current_write<'r>(
    r: &'r mut Registry,
    upload_id: &str,
    n: u16,
    generation: u64,
) -> Option<&'r mut Progress> {
    r.followed
        .get_mut(upload_id)
        .and_then(|f| f.parts.get_mut(&n))
        .filter(|p| p.generation == generation)
}

/// Hashes what has arrived in order, on the blocking pool, unless that runs already.
fn advance(upload_id: &str) {
    let mut r = registry();
    let Some(f) = r.followed.get_mut(upload_id) else {
        return;
    };
    if f.broken || f.stop {
        return;
    }
    if f.running {
        f.again = true;
        return;
    }
    f.running = true;
    drop(r);
    let id = upload_id.to_string();
    // Off the caller's task: a part's write should not wait for the hash of another.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn_blocking(move || follow(&id));
    } else {
        follow(&id);
    }
}

/// What the follower hashes next: bytes `from..to` of `data`, in part `n` of `generation`.
struct Step {
    n: u16,
    generation: u64,
    from: u64,
    to: u64,
    hasher: Sha256Meter,
    dir: PathBuf,
    file: Option<(u64, u64)>,
}

/// Puts `running` down if the follower panics, so that nothing waits for it.
struct RunGuard<'a>(&'a str);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(f) = registry().followed.get_mut(self.0) {
                f.running = false;
                f.broken = true;
            }
            IDLE.notify_all();
        }
    }
}

fn follow(upload_id: &str) {
    let _guard = RunGuard(upload_id);
    let mut data: Option<std::fs::File> = None;
    let mut buf = vec![0u8; READ];
    loop {
        let step = {
            let mut r = registry();
            let Some(f) = r.followed.get_mut(upload_id) else {
                return;
            };
            match next_step(f) {
                Some(step) => step,
                None => {
                    if f.again && !f.broken && !f.stop {
                        f.again = false;
                        continue;
                    }
                    f.running = false;
                    IDLE.notify_all();
                    drop(r);
                    moved().notify_waiters();
                    return;
                }
            }
        };
        let Step {
            n,
            generation,
            from,
            to,
            mut hasher,
            dir,
            file,
        } = step;
        let read = hash_range(&mut data, &dir, file, from, to, &mut hasher, &mut buf);
        let mut r = registry();
        let Some(f) = r.followed.get_mut(upload_id) else {
            IDLE.notify_all();
            return;
        };
        f.hasher = Some(hasher);
        match read {
            Ok(identity) if f.parts.get(&n).map(|p| p.generation) == Some(generation) => {
                f.file = Some(identity);
                f.hashed = to;
                f.hashed_parts.insert(n, generation);
            }
            // A new write of the part started while we read it, `data` is not the file that
            // was hashed, or reading failed: what the hasher holds is not the prefix.
            _ => f.broken = true,
        }
        drop(r);
        moved().notify_waiters();
    }
}

/// The next bytes to hash, or `None` when there is nothing to do (or it must stop).
fn next_step(f: &mut Followed) -> Option<Step> {
    if f.broken || f.stop {
        return None;
    }
    let part_size = f.part_size.filter(|s| *s > 0)?;
    let n = u16::try_from(f.hashed / part_size + 1).ok()?;
    let within = f.hashed % part_size;
    let p = f.parts.get(&n)?;
    if p.written <= within {
        return None;
    }
    let start = u64::from(n - 1) * part_size;
    let to = start + p.written.min(within + STEP);
    Some(Step {
        n,
        generation: p.generation,
        from: f.hashed,
        to,
        hasher: f.hasher.take()?,
        dir: f.dir.clone(),
        file: f.file,
    })
}

/// Hashes `from..to` of `dir/data`, which must be the file `expected` when given; returns the
/// file's device and inode.
fn hash_range(
    data: &mut Option<std::fs::File>,
    dir: &Path,
    expected: Option<(u64, u64)>,
    from: u64,
    to: u64,
    hasher: &mut Sha256Meter,
    buf: &mut [u8],
) -> std::io::Result<(u64, u64)> {
    if data.is_none() {
        *data = Some(std::fs::File::open(dir.join("data"))?);
    }
    let file = data.as_ref().expect("opened above");
    let meta = file.metadata()?;
    let identity = (meta.dev(), meta.ino());
    if expected.is_some_and(|e| e != identity) {
        return Err(std::io::Error::other("data is another file"));
    }
    let mut at = from;
    while at < to {
        let want = ((to - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..want], at)?;
        hasher.update(&buf[..want]);
        at += want as u64;
    }
    Ok(identity)
}

/// Woken each time the hash of an upload moves on, or stops.
fn moved() -> &'static tokio::sync::Notify {
    static MOVED: OnceLock<tokio::sync::Notify> = OnceLock::new();
    MOVED.get_or_init(tokio::sync::Notify::new)
}

/// Holds back the write of part `n` of an upload until the hash is at most [`AHEAD_PARTS`]
/// parts behind it, while the hash moves fast enough.
///
/// Why: the parts of a presigned upload arrive side by side (10 at a time from BentoML), so
/// when the last one ends, all but the first are still to be hashed in order: 0.5 s per GiB at
/// finish on the machine of `bench/`, a quarter of the upload. Holding the parts far ahead
/// makes them arrive roughly in order, and the hash keeps pace with the receive, as a proxy
/// upload's does. It acts through TCP: the request's body is not read, so its client's writes
/// wait. Pacing ends for the whole upload when the hash moves slower than [`PACE_MIN_RATE`]
/// over [`PACE_WINDOW`] (a slow link, a late first part), so that costs one window; no part
/// waits more than [`MAX_HELD`].
pub(super) async fn pace(upload_id: &str, n: u16) {
    let began = std::time::Instant::now();
    let mut window: Option<(std::time::Instant, u64)> = None;
    loop {
        let notified = moved().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let hashed = {
            let r = registry();
            let Some(f) = r.followed.get(upload_id) else {
                return;
            };
            let Some(part_size) = f.part_size.filter(|s| *s > 0) else {
                return;
            };
            let hashing = f.hashed / part_size + 1;
            if !f.paced || f.broken || f.stop || u64::from(n) <= hashing + AHEAD_PARTS {
                return;
            }
            f.hashed
        };
        let now = std::time::Instant::now();
        let (mut since, from) = *window.get_or_insert((now, hashed));
        if now - since >= PACE_WINDOW {
            let rate = hashed.saturating_sub(from) as f64 / (now - since).as_secs_f64();
            if rate < PACE_MIN_RATE as f64 {
                if let Some(f) = registry().followed.get_mut(upload_id) {
                    f.paced = false;
                }
                moved().notify_waiters();
                return;
            }
            since = now;
            window = Some((now, hashed));
        }
        let left = MAX_HELD.saturating_sub(began.elapsed());
        if left.is_zero() {
            return;
        }
        let next_look = PACE_WINDOW.saturating_sub(now - since);
        let _ = tokio::time::timeout(
            left.min(next_look.max(std::time::Duration::from_millis(1))),
            notified,
        )
        .await;
    }
}

/// Bytes of the upload hashed so far, while it is followed and what was hashed still counts.
pub(super) fn hashed_so_far(upload_id: &str) -> Option<u64> {
    registry()
        .followed
        .get(upload_id)
        .filter(|f| !f.broken)
        .map(|f| f.hashed)
}

/// Ends the following of an upload whose parts are abandoned (a follower still running finds
/// no record when it looks next, and stops).
pub(super) fn forget(upload_id: &str) {
    registry().followed.remove(upload_id);
}

/// Drops the hash kept for the object `key` (its object is being made again, or replaced).
pub(super) fn discard_ready(key: &str) {
    registry().ready.retain(|ready| ready.key != key);
}

/// The object `from` is now `to`: so is the hash kept for it (checked against the file when
/// taken, as ever).
pub(super) fn rename_ready(from: &str, to: &str) {
    let mut r = registry();
    r.ready.retain(|ready| ready.key != to);
    if let Some(ready) = r.ready.iter_mut().find(|ready| ready.key == from) {
        ready.key = to.to_string();
    }
}

/// Called by a completion in place, under the exclusive lock of `data` (no part is being
/// written), with the parts it joins (`(number, length)`, numbers 1..=K), `data`'s metadata
/// (trimmed to the object's `size`): keeps the hashed prefix for the object `key` when it is
/// certainly the object's first bytes (see the module's doc). Ends the following either way.
pub(super) fn take_at_complete(
    upload_id: &str,
    dir: &Path,
    key: &str,
    parts: &[(u16, u64)],
    part_size: u64,
    data: &std::fs::Metadata,
    size: u64,
) {
    // Read before the registry is locked: the lock is taken by every part write.
    let foreign = !only_this_process_wrote(dir);
    let mut r = registry();
    let Some(f) = r.followed.get_mut(upload_id) else {
        return;
    };
    f.stop = true;
    let deadline = std::time::Instant::now() + STOP_WAIT;
    while r.followed.get(upload_id).is_some_and(|f| f.running) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            // Not scheduled yet (a busy blocking pool), or slow: not worth holding the
            // completion for. The follower finds no record when it looks next, and stops.
            r.followed.remove(upload_id);
            return;
        }
        r = IDLE
            .wait_timeout(r, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    let Some(f) = r.followed.remove(upload_id) else {
        return;
    };
    let sound = !foreign
        && !f.broken
        && f.hashed > 0
        && f.hashed <= size
        && f.part_size == Some(part_size)
        && f.file == Some((data.dev(), data.ino()))
        && f.hashed_parts.iter().all(|(n, generation)| {
            parts.iter().any(|(m, _)| m == n)
                && f.parts
                    .get(n)
                    .is_some_and(|p| p.generation == *generation && p.done)
        });
    let Some(hasher) = f.hasher.filter(|h| sound && h.len() == f.hashed) else {
        return;
    };
    keep_ready(&mut r, key, hasher, FileId::of(data), size);
}

/// Keeps the hash of the whole object `key` that a single PUT wrote into the file `file`
/// (`size` bytes), hashed as it arrived, for its check.
pub(super) fn keep_whole(key: &str, hasher: Sha256Meter, file: FileId, size: u64) {
    if hasher.len() == size {
        keep_ready(&mut registry(), key, hasher, file, size);
    }
}

fn keep_ready(r: &mut Registry, key: &str, hasher: Sha256Meter, file: FileId, size: u64) {
    r.ready.retain(|ready| ready.key != key);
    if r.ready.len() >= MAX_READY {
        r.ready.pop_front();
    }
    r.ready.push_back(Ready {
        key: key.to_string(),
        hasher,
        file,
        size,
    });
}

/// Whether every mark of a writer in `dir` is this process's (and there is one).
fn only_this_process_wrote(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mine = format!("{WRITER_MARK}{}", process_mark());
    let mut marked = false;
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(WRITER_MARK) {
            if name != mine {
                return false;
            }
            marked = true;
        }
    }
    marked
}

/// The hashed prefix of the object whose open file has the metadata `meta` (key `key`), when
/// its upload kept one for that very file: same device and inode, same modification time,
/// same size (a later PUT to the same URL puts another file in place; two PUTs that race keep
/// the hash of the one put in place last only if it was also kept last, else nothing).
pub(super) fn take_prefix(key: &str, meta: &std::fs::Metadata) -> Option<Sha256Meter> {
    let ready = {
        let mut r = registry();
        let at = r.ready.iter().position(|ready| ready.key == key)?;
        r.ready.remove(at)?
    };
    (ready.file.is(meta) && meta.len() == ready.size).then_some(ready.hasher)
}
