//! The upload life cycle of a version, on every path (proxy, presigned single PUT, presigned
//! multipart), and the integrity check that closes it.
//!
//! The rules, in one place:
//! - Every upload is a row of `uploads` and writes its own object; the served archive changes only
//!   by a compare-and-swap on the version when a whole, checked archive commits.
//! - A version that serves an archive keeps serving it until a new whole archive replaces it; a
//!   failed or interrupted replacement leaves the version as it was (the reason stays on the upload).
//! - A push that wrote a version's manifest holds the version for [`PUSH_CLAIM_SECS`]: pushes
//!   with other credentials may neither write the manifest nor start an upload meanwhile (they are
//!   told at once that they lost), so the archive that is served comes with its own manifest.
//! - One upload of a version runs at a time: a second push is told at once that it lost. Among
//!   pushes that started from the same served archive, the first to finish wins; a later one is
//!   refused (409) and its object removed.
//! - An upload carries the manifest of its push, and the version takes that manifest together
//!   with the archive.
//! - A presigned URL writes only while its upload is running: once it ended, the URL changes
//!   nothing that is served (a single PUT's object is moved to a key the client never saw).

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use yatai_archive::ArchiveFacts;
use yatai_domain::registry::{
    bento_model_tags, offers_presigned_urls, ClientGeneration, Kind, Transfer, UploadState,
    UploadStatus, PUSH_CLAIM_SECS,
};
use yatai_domain::time::now_micros;
use yatai_domain::{Action, Error};
use yatai_store::db::uploads::{self, NewUpload, Upload};
use yatai_store::db::versions::{self, Version};
use yatai_store::db::{bento_models, db_error};
use yatai_store::objects::PresignOp;

use super::{load_version, new_object_key, tag};
use crate::{events, Caller, Services};

/// A version being written to, with its tag for messages.
struct Target {
    kind: Kind,
    tag: String,
    version: Version,
}

async fn writable(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
) -> Result<Target, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let v = load_version(svc, caller, kind, name, version).await?;
    Ok(Target {
        kind,
        tag: tag(name, version),
        version: v,
    })
}

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// Whether an upload still shows signs of life (see [`crate::UploadTimings`]).
fn is_fresh(svc: &Services, u: &Upload, now: i64) -> bool {
    let limit = match u.transfer {
        Transfer::Proxy => svc.settings.uploads.proxy_stale_after,
        Transfer::Single | Transfer::Multipart => svc.settings.uploads.presigned_stale_after,
    };
    u.active_at >= now - micros(limit)
}

/// Refuses an upload by other credentials than those of the push that holds the version's
/// claim (it wrote the manifest less than [`PUSH_CLAIM_SECS`] ago): that push's manifest is the
/// one an upload is paired with, so only that push may upload. The credentials, not the
/// connection, are compared: a client may send its archive over another connection than its
/// manifest.
fn ensure_not_claimed_by_another(caller: &Caller, t: &Target, now: i64) -> Result<(), Error> {
    let v = &t.version;
    let (Some(at), Some(holder)) = (v.push_claimed_at, v.push_claim_holder.as_deref()) else {
        return Ok(());
    };
    let theirs = holder
        .split_once('@')
        .map_or(holder, |(credentials, _)| credentials);
    if at < now - PUSH_CLAIM_SECS * 1_000_000 || theirs == caller.push_credentials() {
        return Ok(());
    }
    let secs = (now - at).max(0) / 1_000_000;
    Err(Error::Conflict(format!(
        "another push of {} {} (other credentials) wrote its manifest {secs} s ago and is \
         about to upload; this push lost. Push again when it has finished (with --force to \
         replace its archive)",
        t.kind.as_str(),
        t.tag
    )))
}

/// Refuses a new upload while another one of the version runs (a stale one is failed first), or
/// while another push holds the version's claim.
async fn ensure_no_upload_running(
    svc: &Services,
    caller: &Caller,
    t: &Target,
) -> Result<(), Error> {
    let now = now_micros();
    ensure_not_claimed_by_another(caller, t, now)?;
    for u in uploads::uploading_of_version(svc.db.pool(), &t.version.uid).await? {
        if is_fresh(svc, &u, now) {
            let secs = (now - u.created_at).max(0) / 1_000_000;
            return Err(Error::Conflict(format!(
                "another push of {} {} is uploading (started {secs} s ago); this push lost. \
                 Push again when it has finished (with --force to replace its archive)",
                t.kind.as_str(),
                t.tag
            )));
        }
        abandon(svc, &u).await?;
    }
    Ok(())
}

/// Starts an upload of `t` writing `object_key`: records it with the manifest of its push and
/// the archive it would replace, and marks a first push as uploading.
async fn open_upload(
    svc: &Services,
    caller: &Caller,
    t: &Target,
    transfer: Transfer,
    object_key: &str,
    upload_id: Option<&str>,
) -> Result<Upload, Error> {
    let u = uploads::create(
        svc.db.pool(),
        &NewUpload {
            version_uid: &t.version.uid,
            transfer,
            object_key,
            upload_id,
            manifest: t.version.push_manifest(),
            base_object_key: t.version.object_key.as_deref(),
            creator_uid: &caller.user().uid,
        },
    )
    .await
    .map_err(|e| match e {
        // Another push started an upload of this version between our check and this insert
        // (the database keeps one running upload per version).
        Error::Conflict(_) => Error::Conflict(format!(
            "another push of {} {} is uploading; this push lost. Push again when it has \
             finished (with --force to replace its archive)",
            t.kind.as_str(),
            t.tag
        )),
        other => other,
    })?;
    versions::start_upload(svc.db.pool(), &t.version.uid).await?;
    Ok(u)
}

/// Ends an upload as failed with `reason` and removes what it wrote. Its push is over: the
/// version's claim is released. A version that serves an archive is left as it is; one that
/// does not records the reason.
pub async fn fail(svc: &Services, u: &Upload, reason: &str) -> Result<(), Error> {
    if uploads::finish(svc.db.pool(), &u.uid, UploadState::Failed, reason).await? {
        versions::release_claim(svc.db.pool(), &u.version_uid, Some(u.active_at)).await?;
        discard_objects(svc, u).await;
        versions::finish_failed(svc.db.pool(), &u.version_uid, reason).await?;
    }
    Ok(())
}

/// Ends an upload that lost its client or its server process, and removes what it wrote. The
/// version returns to the state it had before (`pending` for a first push); returns whether
/// the version was reset.
pub async fn abandon(svc: &Services, u: &Upload) -> Result<bool, Error> {
    let reason = "abandoned: no sign of life from its client or server";
    if !uploads::finish(svc.db.pool(), &u.uid, UploadState::Failed, reason).await? {
        return Ok(false);
    }
    versions::release_claim(svc.db.pool(), &u.version_uid, Some(u.active_at)).await?;
    discard_objects(svc, u).await;
    versions::reset_abandoned(svc.db.pool(), &u.version_uid).await
}

/// Removes what an upload wrote: its object, and a multipart upload's parts.
pub(super) async fn discard_objects(svc: &Services, u: &Upload) {
    if let Some(id) = &u.upload_id {
        if let Err(e) = svc.objects.abort_multipart(&u.object_key, id).await {
            tracing::warn!(error = %e, key = u.object_key, "could not abort a multipart upload; the janitor will retry");
        }
    }
    if let Err(e) = svc.objects.delete(&u.object_key).await {
        tracing::warn!(error = %e, key = u.object_key, "could not delete an upload's object; the janitor will retry");
    }
    // Where a single PUT's archive was checked, but the one served.
    match stray_copies(svc, u).await {
        Ok(copies) => {
            for key in copies {
                if let Err(e) = svc.objects.delete(&key).await {
                    tracing::warn!(error = %e, key, "could not delete an upload's checked copy; the janitor will retry");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, key = u.object_key, "could not list an upload's checked copies; the janitor will retry")
        }
    }
}

/// The copies a single PUT upload's finishes made to check its archive (see
/// `checked_copies`), but the one its version serves.
pub(super) async fn stray_copies(svc: &Services, u: &Upload) -> Result<Vec<String>, Error> {
    if u.transfer != Transfer::Single {
        return Ok(Vec::new());
    }
    let copies = yatai_store::objects::checked_copies(&u.object_key);
    let mut keys = svc.objects.list_keys(Some(&copies)).await?;
    if !keys.is_empty() {
        let served = versions::find_by_uid(svc.db.pool(), &u.version_uid)
            .await?
            .and_then(|v| v.object_key);
        keys.retain(|k| Some(k) != served.as_ref());
    }
    Ok(keys)
}

/// Makes a checked archive the served one, with the manifest of its push, if the archive its
/// upload started from is still the served one; deletes the archive it replaces.
async fn commit(
    svc: &Services,
    caller: &Caller,
    t: &Target,
    u: &Upload,
    served_key: &str,
    facts: &ArchiveFacts,
) -> Result<(), Error> {
    let mut tx = svc.db.begin().await?;
    let won = versions::finish_success(
        &mut *tx,
        &t.version.uid,
        u.base_object_key.as_deref(),
        served_key,
        facts.size as i64,
        &facts.sha256,
        &u.manifest,
    )
    .await?;
    let ended = won && uploads::finish(&mut *tx, &u.uid, UploadState::Committed, "").await?;
    if !ended {
        drop(tx);
        let reason = format!(
            "another push of {} {} finished first; its archive is served",
            t.kind.as_str(),
            t.tag
        );
        // Only when this call ended it: an upload committed meanwhile (by another finish of it)
        // serves this very key.
        if uploads::finish(svc.db.pool(), &u.uid, UploadState::Failed, &reason).await? {
            if let Err(e) = svc.objects.delete(served_key).await {
                tracing::warn!(error = %e, key = served_key, "could not delete a losing upload's archive");
            }
        }
        return Err(Error::Conflict(format!(
            "{reason}. Push again with --force if yours should replace it"
        )));
    }
    if t.kind == Kind::Bento && u.manifest != t.version.manifest {
        let manifest: serde_json::Value = serde_json::from_str(&u.manifest).unwrap_or_default();
        bento_models::replace(
            &mut tx,
            &caller.organization.uid,
            &t.version.uid,
            &bento_model_tags(&manifest),
        )
        .await?;
    }
    tx.commit().await.map_err(db_error)?;
    if let Some(old) = u
        .base_object_key
        .as_deref()
        .filter(|old| *old != served_key)
    {
        if let Err(e) = svc.objects.delete(old).await {
            tracing::error!(error = %e, key = old, "could not delete a replaced archive");
        }
    }
    events::record(svc, caller, t.kind.as_str(), &t.tag, "push").await;
    Ok(())
}

/// Records signs of life of `u` while `work` runs, so that the janitor knows its process lives.
async fn with_heartbeat<T>(
    svc: &Services,
    u: &Upload,
    work: impl std::future::Future<Output = T>,
) -> T {
    let every = svc.settings.uploads.heartbeat;
    let beat = {
        let (db, uid) = (svc.db.clone(), u.uid.clone());
        async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = uploads::touch(db.pool(), &uid).await {
                    tracing::warn!(error = %e, "could not record an upload's sign of life");
                }
            }
        }
    };
    tokio::select! {
        out = work => out,
        _ = beat => unreachable!("the heartbeat never ends"),
    }
}

/// Streams `body` into `key` while checking it as an archive, in one pass. The outer error is a
/// fault (storage, interrupted body); the inner one says why the bytes are not a valid archive.
async fn store_and_inspect<S, E>(
    svc: &Services,
    key: &str,
    declared: Option<u64>,
    body: S,
) -> Result<Result<ArchiveFacts, String>, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Error>>(4);
    let inspector = tokio::spawn(yatai_archive::inspect_stream(rx));
    let teed = body.then(move |chunk| {
        let mut tx = tx.clone();
        async move {
            if let Ok(c) = &chunk {
                let _ = tx.send(Ok(c.clone())).await;
            }
            chunk
        }
    });
    // The inspector hashes the bytes; the write does not hash them again.
    let stored = svc
        .objects
        .write_stream(key, declared, Box::pin(teed))
        .await;
    let facts = inspector
        .await
        .map_err(|e| Error::Internal(format!("archive check failed: {e}")))??;
    stored?;
    Ok(facts)
}

fn refused(t: &Target, reason: &str) -> Error {
    Error::invalid(format!(
        "upload of {} {} refused: {reason}",
        t.kind.title(),
        t.tag
    ))
}

/// Marks the first upload of a version as started (`start_upload`). A version that serves an
/// archive keeps its status during a re-push.
pub async fn start(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
) -> Result<Version, Error> {
    let t = writable(svc, caller, kind, name, version).await?;
    ensure_not_claimed_by_another(caller, &t, now_micros())?;
    versions::start_upload(svc.db.pool(), &t.version.uid).await?;
    reload(svc, &t).await
}

async fn reload(svc: &Services, t: &Target) -> Result<Version, Error> {
    versions::find_by_uid(svc.db.pool(), &t.version.uid)
        .await?
        .ok_or_else(|| Error::not_found(t.kind.as_str(), &t.tag))
}

/// A proxy upload: the body is the archive, streamed to storage and checked on the way, then
/// committed. `declared` is the request's Content-Length, when it had one.
pub async fn receive_proxy<S, E>(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
    declared: Option<u64>,
    body: S,
) -> Result<Version, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let t = writable(svc, caller, kind, name, version).await?;
    ensure_no_upload_running(svc, caller, &t).await?;
    let key = new_object_key(kind, &caller.organization.uid, name, version);
    let u = open_upload(svc, caller, &t, Transfer::Proxy, &key, None).await?;
    let facts = match with_heartbeat(svc, &u, store_and_inspect(svc, &key, declared, body)).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(reason)) => {
            fail(svc, &u, &reason).await?;
            return Err(refused(&t, &reason));
        }
        Err(e) => {
            fail(svc, &u, &format!("the upload did not complete: {e}")).await?;
            return Err(e);
        }
    };
    if let Some(n) = declared.filter(|n| *n != facts.size) {
        let reason = format!("received {} bytes but Content-Length said {n}", facts.size);
        fail(svc, &u, &reason).await?;
        return Err(refused(&t, &reason));
    }
    commit(svc, caller, &t, &u, &key, &facts).await?;
    reload(svc, &t).await
}

/// A presigned URL for one PUT of the whole archive, or `None` when this server or client takes
/// the proxy path (the client then falls back to it).
pub async fn presign_single(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
    client: ClientGeneration,
) -> Result<(Version, Option<String>), Error> {
    let t = writable(svc, caller, kind, name, version).await?;
    if !offers_presigned_urls(svc.settings.transmission_strategy, client) {
        return Ok((t.version, None));
    }
    ensure_no_upload_running(svc, caller, &t).await?;
    let key = new_object_key(kind, &caller.organization.uid, name, version);
    open_upload(svc, caller, &t, Transfer::Single, &key, None).await?;
    let url = svc
        .objects
        .presign(&key, &PresignOp::Put, svc.settings.uploads.upload_url_ttl)
        .await?;
    Ok((reload(svc, &t).await?, Some(url)))
}

/// Starts a presigned multipart upload; returns its id.
pub async fn start_multipart(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
) -> Result<(Version, String), Error> {
    let t = writable(svc, caller, kind, name, version).await?;
    ensure_no_upload_running(svc, caller, &t).await?;
    let key = new_object_key(kind, &caller.organization.uid, name, version);
    let upload_id = svc.objects.create_multipart(&key).await?;
    open_upload(svc, caller, &t, Transfer::Multipart, &key, Some(&upload_id)).await?;
    Ok((reload(svc, &t).await?, upload_id))
}

/// The multipart upload `upload_id` of `t`, which must still be running.
async fn running_multipart(svc: &Services, t: &Target, upload_id: &str) -> Result<Upload, Error> {
    let u = uploads::find_multipart(svc.db.pool(), &t.version.uid, upload_id)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "upload_id {upload_id:?} is not a multipart upload of {} {}; call start_multipart_upload",
                t.kind.as_str(),
                t.tag
            ))
        })?;
    if u.status != UploadState::Uploading {
        return Err(Error::Conflict(format!(
            "the multipart upload {upload_id:?} of {} {} has ended ({}{}); start a new one",
            t.kind.as_str(),
            t.tag,
            u.status,
            if u.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", u.reason)
            }
        )));
    }
    uploads::touch(svc.db.pool(), &u.uid).await?;
    Ok(u)
}

/// A presigned URL for one part of a running multipart upload.
pub async fn presign_part(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
    upload_id: &str,
    part_number: u16,
) -> Result<(Version, String), Error> {
    let t = writable(svc, caller, kind, name, version).await?;
    if !(1..=10000).contains(&part_number) {
        return Err(Error::invalid("part_number must be between 1 and 10000"));
    }
    let u = running_multipart(svc, &t, upload_id).await?;
    let op = PresignOp::Part {
        upload_id: upload_id.to_string(),
        part_number,
    };
    let url = svc
        .objects
        .presign(&u.object_key, &op, svc.settings.uploads.upload_url_ttl)
        .await?;
    Ok((t.version, url))
}

/// Assembles the uploaded parts of a running multipart upload (`(part_number, etag)`).
pub async fn complete_multipart(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
    upload_id: &str,
    parts: Vec<(u16, String)>,
) -> Result<Version, Error> {
    let t = writable(svc, caller, kind, name, version).await?;
    let u = running_multipart(svc, &t, upload_id).await?;
    svc.objects
        .complete_multipart(&u.object_key, upload_id, parts)
        .await?;
    Ok(t.version)
}

/// Ends the uploads of a version as the client reports: `failed` with a reason, or `success`,
/// which checks and commits the presigned upload whose archive is complete.
pub async fn finish(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
    status: UploadStatus,
    reason: &str,
) -> Result<Version, Error> {
    let t = writable(svc, caller, kind, name, version).await?;
    match status {
        UploadStatus::Failed => {
            let reason = if reason.is_empty() {
                "the client reported a failure"
            } else {
                reason
            };
            let running = uploads::uploading_of_version(svc.db.pool(), &t.version.uid).await?;
            for u in &running {
                fail(svc, u, reason).await?;
            }
            if t.version.object_key.is_none() {
                if running.is_empty() {
                    // No upload to tell its claim by: the push that reports its failure ends it.
                    versions::release_claim(svc.db.pool(), &t.version.uid, None).await?;
                }
                versions::finish_failed(svc.db.pool(), &t.version.uid, reason).await?;
            }
        }
        UploadStatus::Success => finish_presigned(svc, caller, &t).await?,
        other => {
            return Err(Error::invalid(format!(
                "finish_upload takes status success or failed, not {other}"
            )))
        }
    }
    reload(svc, &t).await
}

/// Checks and commits the running presigned upload of `t` whose archive is complete.
async fn finish_presigned(svc: &Services, caller: &Caller, t: &Target) -> Result<(), Error> {
    let running: Vec<Upload> = uploads::uploading_of_version(svc.db.pool(), &t.version.uid)
        .await?
        .into_iter()
        .filter(|u| u.transfer != Transfer::Proxy)
        .collect();
    if running.is_empty() {
        // Finishing twice, or after a proxy upload (which finishes by itself), is harmless when
        // the version serves an archive (read again: another finish may have just committed).
        let now = versions::find_by_uid(svc.db.pool(), &t.version.uid).await?;
        if now.is_some_and(|v| v.object_key.is_some()) {
            return Ok(());
        }
        return Err(Error::Conflict(format!(
            "no upload of {} {} is in progress: upload it before finishing",
            t.kind.as_str(),
            t.tag
        )));
    }
    for u in running {
        // Until its commit, no PUT to this server's own URL may place a file (see
        // `receive_presigned_put`): it would be checked by no one, and left behind.
        let _placing = object_lock(&u.object_key).lock().await;
        // Another finish of this process may have ended it while this one waited.
        match uploads::find_by_key(svc.db.pool(), &u.object_key).await? {
            Some(now) if now.status == UploadState::Uploading => {}
            Some(now) if now.status == UploadState::Committed => return Ok(()),
            _ => continue,
        }
        let arrived = svc.objects.size(&u.object_key).await?.is_some();
        // A single PUT's URL names its object and stays valid until it expires, and S3 takes
        // the PUTs to it without us. So the archive is first moved to a key of its own that no
        // URL is made for and nothing writes again, and that is what is checked and served: a
        // PUT landing meanwhile changes nothing served (checking first and moving after let one
        // land between the two). A finish interrupted after the move finds it there again.
        let checked_key = match u.transfer {
            Transfer::Single if arrived => {
                let key = yatai_store::objects::new_checked_copy(&u.object_key);
                svc.objects.rename(&u.object_key, &key).await?;
                key
            }
            Transfer::Single => {
                let copies = yatai_store::objects::checked_copies(&u.object_key);
                match svc.objects.list_keys(Some(&copies)).await?.pop() {
                    Some(key) => key,
                    None => continue, // its bytes have not arrived (yet)
                }
            }
            Transfer::Proxy | Transfer::Multipart if arrived => u.object_key.clone(),
            Transfer::Proxy | Transfer::Multipart => continue,
        };
        // Bytes written on this server may have been hashed as they arrived: then only the
        // rest is read and hashed now (see `inspect_archive`).
        match svc.objects.inspect_archive(&checked_key).await? {
            Ok(facts) => return commit(svc, caller, t, &u, &checked_key, &facts).await,
            Err(reason) => {
                // Removes the upload's objects, the checked copy with them.
                fail(svc, &u, &reason).await?;
                return Err(refused(t, &reason));
            }
        }
    }
    Err(Error::Conflict(format!(
        "the archive of {} {} has not been uploaded completely: upload it before finishing",
        t.kind.as_str(),
        t.tag
    )))
}

/// Writes the body of the server's own presigned PUT URL (local backend), only while the upload
/// the URL belongs to is running.
pub async fn receive_presigned_put<S, E>(
    svc: &Services,
    key: &str,
    body: S,
) -> Result<String, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let u = running_upload_of_url(svc, key, Transfer::Single).await?;
    // Checked again when the bytes are all written, under the lock that finish holds from its
    // check to its commit: a PUT that started before the finish cannot put unchecked bytes in
    // place of the checked ones, nor write anything once the upload has ended.
    let gate = || async {
        let placing = object_lock(key).lock().await;
        running_upload_of_url(svc, key, Transfer::Single).await?;
        Ok(placing)
    };
    with_heartbeat(svc, &u, svc.objects.put_with_etag(key, body, gate)).await
}

/// The lock that orders the check and commit of a presigned archive (`finish_presigned`) and
/// the placing of a PUT's object under its key, striped by key.
fn object_lock(key: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    const STRIPES: usize = 256;
    static LOCKS: std::sync::LazyLock<Vec<tokio::sync::Mutex<()>>> =
        std::sync::LazyLock::new(|| (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    &LOCKS[(h.finish() % STRIPES as u64) as usize]
}

/// Writes one part of the server's own multipart upload (local backend), only while that
/// upload is running; `declared_len` is its Content-Length, which lets the part be written in
/// place. Returns the part's ETag.
pub async fn receive_presigned_part<S, E>(
    svc: &Services,
    key: &str,
    upload_id: &str,
    part_number: u16,
    declared_len: Option<u64>,
    body: S,
) -> Result<String, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if part_number == 0 {
        return Err(Error::invalid("part_number starts at 1"));
    }
    let u = running_upload_of_url(svc, key, Transfer::Multipart).await?;
    if u.upload_id.as_deref() != Some(upload_id) {
        return Err(Error::Forbidden(
            "this upload URL does not belong to that multipart upload".into(),
        ));
    }
    with_heartbeat(
        svc,
        &u,
        svc.objects
            .put_local_part(upload_id, part_number, declared_len, body),
    )
    .await
}

async fn running_upload_of_url(
    svc: &Services,
    key: &str,
    transfer: Transfer,
) -> Result<Upload, Error> {
    let gone = || {
        Error::Forbidden(
            "this upload URL is no longer valid: the upload it belongs to has ended".into(),
        )
    };
    let u = uploads::find_by_key(svc.db.pool(), key)
        .await?
        .ok_or_else(gone)?;
    if u.status != UploadState::Uploading || u.transfer != transfer {
        return Err(gone());
    }
    Ok(u)
}

/// Whether a version may take part in a new push's manifest write: claims it for `caller`'s push
/// (see [`PUSH_CLAIM_SECS`]) and writes `manifest` (at once when the version serves no archive,
/// else together with that push's archive). Refuses while another push holds the claim.
pub async fn claim_manifest(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    version: &Version,
    tag: &str,
    manifest: &str,
) -> Result<(), Error> {
    let active_since = now_micros() - micros(svc.settings.uploads.proxy_stale_after);
    if versions::claim_push(
        svc.db.pool(),
        &version.uid,
        &caller.push_holder(),
        &caller.push_credentials(),
        manifest,
        PUSH_CLAIM_SECS,
        active_since,
    )
    .await?
    {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "another push of {} {tag} is in progress; this push lost. Push again when it has \
         finished (with --force to replace its archive)",
        kind.as_str()
    )))
}
