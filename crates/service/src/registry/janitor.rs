//! The janitor: after a crash (of a client, of this server, of the S3 server), finds what was
//! left half done and puts it right, on start and then periodically.
//!
//! - Uploads without a sign of life for longer than their limit are failed ("abandoned"), and
//!   what they wrote is removed (object, parts, S3 multipart upload).
//! - Versions left `uploading` by an abandoned first push go back to `pending`.
//! - Staging files of interrupted local writes, and parts of local multipart uploads that belong
//!   to no running upload, are deleted once older than the proxy limit.
//! - Incomplete S3 multipart uploads that belong to no running upload are aborted once older
//!   than the proxy limit (a proxy upload's own multipart id is never recorded).
//! - Objects that a presigned PUT wrote after its upload had ended are deleted, and so are the
//!   copies of a single PUT's archive made to check it that are not served (see `checked_copies`).
//! - Ended uploads are forgotten after a week.

use std::collections::HashSet;
use std::time::Duration;

use yatai_domain::registry::{Transfer, UploadState};
use yatai_domain::time::now_micros;
use yatai_domain::Error;
use yatai_store::db::{uploads, versions};

use super::uploads::{abandon, discard_objects};
use crate::Services;

/// How long the outcome of an ended upload is kept.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub abandoned_uploads: usize,
    pub versions_reset: usize,
    pub staging_files: usize,
    pub multipart_uploads_aborted: usize,
    pub late_objects: usize,
    pub ended_forgotten: u64,
}

impl Sweep {
    fn is_empty(&self) -> bool {
        *self == Sweep::default()
    }
}

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// Runs one sweep. Each step goes on when another fails (S3 down, say); the first error is
/// returned after all steps ran.
pub async fn sweep(svc: &Services) -> Result<Sweep, Error> {
    let timings = svc.settings.uploads;
    let now = now_micros();
    let mut done = Sweep::default();
    let mut first_error: Option<Error> = None;
    let mut keep = |r: Result<(), Error>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "janitor step failed; it is retried at the next sweep");
            first_error.get_or_insert(e);
        }
    };

    // Abandoned uploads.
    let r: Result<(), Error> = async {
        let stale = uploads::stale(
            svc.db.pool(),
            now - micros(timings.proxy_stale_after),
            now - micros(timings.presigned_stale_after),
        )
        .await?;
        for u in stale {
            if abandon(svc, &u).await? {
                done.versions_reset += 1;
            }
            done.abandoned_uploads += 1;
        }
        for uid in versions::stuck_uploading(svc.db.pool(), now - micros(timings.proxy_stale_after))
            .await?
        {
            if versions::reset_abandoned(svc.db.pool(), &uid).await? {
                done.versions_reset += 1;
            }
        }
        Ok(())
    }
    .await;
    keep(r);

    let running = uploads::uploading_keys(svc.db.pool()).await;
    let (running_keys, running_ids): (HashSet<String>, HashSet<String>) = match &running {
        Ok(rows) => (
            rows.iter().map(|(k, _)| k.clone()).collect(),
            rows.iter().filter_map(|(_, id)| id.clone()).collect(),
        ),
        Err(_) => Default::default(),
    };
    if let Err(e) = running {
        keep(Err(e));
    } else {
        // Local staging files (a running upload's are fresh: they are written to right now).
        for path in svc.objects.stale_staging_files(timings.proxy_stale_after) {
            match std::fs::remove_file(&path) {
                Ok(()) => done.staging_files += 1,
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "could not delete a staging file")
                }
            }
        }
        // Local multipart parts of no running upload.
        let r: Result<(), Error> = async {
            for id in svc.objects.local_multipart_ids().await? {
                if !running_ids.contains(&id) {
                    svc.objects.abort_multipart("", &id).await?;
                    done.multipart_uploads_aborted += 1;
                }
            }
            Ok(())
        }
        .await;
        keep(r);
        // S3 multipart uploads of no running upload.
        let r: Result<(), Error> = async {
            let cutoff = (now - micros(timings.proxy_stale_after)) / 1_000_000;
            for m in svc.objects.incomplete_multipart_uploads().await? {
                let ours = running_ids.contains(&m.upload_id) || running_keys.contains(&m.key);
                if !ours && m.initiated_secs < cutoff {
                    svc.objects.abort_multipart(&m.key, &m.upload_id).await?;
                    done.multipart_uploads_aborted += 1;
                }
            }
            Ok(())
        }
        .await;
        keep(r);
    }

    // Objects written through a presigned single PUT URL after its upload ended.
    let r: Result<(), Error> = async {
        let since = now - micros(timings.upload_url_ttl) - micros(timings.presigned_stale_after);
        for u in uploads::ended_since(svc.db.pool(), since).await? {
            if u.transfer == Transfer::Single
                && u.status != UploadState::Uploading
                && leaves_objects(svc, &u).await?
            {
                discard_objects(svc, &u).await;
                done.late_objects += 1;
            }
        }
        done.ended_forgotten =
            uploads::purge_finished(svc.db.pool(), now - micros(KEEP_ENDED)).await?;
        Ok(())
    }
    .await;
    keep(r);

    if !done.is_empty() {
        tracing::info!(?done, "janitor cleaned up after interrupted uploads");
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Whether an ended single PUT upload left an object: a PUT after it ended, or a copy a finish
/// made to check it that is not served.
async fn leaves_objects(svc: &Services, u: &uploads::Upload) -> Result<bool, Error> {
    Ok(svc.objects.size(&u.object_key).await?.is_some()
        || !super::uploads::stray_copies(svc, u).await?.is_empty())
}

/// Sweeps now, then every `janitor_interval`, for as long as the returned task runs.
pub fn spawn(svc: Services) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(svc.settings.uploads.janitor_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = sweep(&svc).await;
        }
    })
}
