//! Bento and model versions: manifest, labels, upload life cycle and the archive they point to.

use sqlx::{Any, Executor};
use yatai_domain::registry::{ImageBuildStatus, Kind, UploadStatus};
use yatai_domain::{time::now_micros, Error};

use yatai_domain::paging::Page;

use super::query::{from_json, like_any, limit_offset, prefixed, Args, JsonSql};
use super::related::Related;
use super::{counts, db_error, db_error_named, repositories, Db};

/// A bento or model version.
#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct Version {
    pub uid: String,
    pub repository_uid: String,
    #[sqlx(try_from = "String")]
    #[serde(deserialize_with = "super::query::from_text")]
    pub kind: Kind,
    pub version: String,
    pub description: String,
    /// The manifest as the client sent it (JSON text).
    pub manifest: String,
    pub build_at: i64,
    #[sqlx(try_from = "String")]
    #[serde(deserialize_with = "super::query::from_text")]
    pub upload_status: UploadStatus,
    pub upload_finished_reason: String,
    pub upload_started_at: Option<i64>,
    pub upload_finished_at: Option<i64>,
    #[sqlx(try_from = "String")]
    #[serde(deserialize_with = "super::query::from_text")]
    pub image_build_status: ImageBuildStatus,
    /// The archive served, when the version has one.
    pub object_key: Option<String>,
    pub archive_size: Option<i64>,
    pub archive_sha256: Option<String>,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    /// The manifest a push replacing the served archive proposed; served with its archive.
    pub push_manifest: Option<String>,
    /// When a push last wrote the manifest (see [`yatai_domain::registry::PUSH_CLAIM_SECS`]).
    pub push_claimed_at: Option<i64>,
    /// Who claimed it (credentials and connection of that push).
    pub push_claim_holder: Option<String>,
}

impl Version {
    /// The version `create` inserts: new, `pending`, its manifest claimed by the creating push.
    fn pending(new: &NewVersion<'_>) -> Version {
        Version {
            uid: crate::new_uid(),
            repository_uid: new.repository_uid.to_string(),
            kind: new.kind,
            version: new.version.to_string(),
            description: new.description.to_string(),
            manifest: new.manifest.to_string(),
            build_at: new.build_at,
            upload_status: UploadStatus::Pending,
            upload_finished_reason: String::new(),
            upload_started_at: None,
            upload_finished_at: None,
            image_build_status: ImageBuildStatus::Pending,
            object_key: None,
            archive_size: None,
            archive_sha256: None,
            creator_uid: Some(new.creator_uid.to_string()),
            created_at: now_micros(),
            updated_at: None,
            push_manifest: None,
            // The creating push claims the manifest (see PUSH_CLAIM_SECS).
            push_claimed_at: Some(now_micros()),
            push_claim_holder: Some(new.claim_holder.to_string()),
        }
    }

    /// The upload status.
    pub fn status(&self) -> UploadStatus {
        self.upload_status
    }

    /// The manifest a new upload of this version carries: the one its push proposed, else the
    /// version's own.
    pub fn push_manifest(&self) -> &str {
        self.push_manifest.as_deref().unwrap_or(&self.manifest)
    }
}

pub(crate) const COLUMNS: &str = "uid, repository_uid, kind, version, description, manifest, build_at, upload_status, upload_finished_reason, \
    upload_started_at, upload_finished_at, image_build_status, object_key, archive_size, archive_sha256, \
    creator_uid, created_at, updated_at, push_manifest, push_claimed_at, push_claim_holder";

/// The fields of a new version.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub repository_uid: &'a str,
    pub kind: Kind,
    pub version: &'a str,
    pub description: &'a str,
    pub manifest: &'a str,
    pub build_at: i64,
    pub creator_uid: &'a str,
    /// Who pushes it (see [`Version::push_claim_holder`]).
    pub claim_holder: &'a str,
}

/// Inserts a version in `pending` state; an existing version is a conflict.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    new: &NewVersion<'_>,
) -> Result<Version, Error> {
    let v = Version::pending(new);
    sqlx::query(
        "INSERT INTO versions (uid, repository_uid, kind, version, description, manifest, build_at, upload_status, creator_uid, created_at, push_claimed_at, push_claim_holder) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&v.uid)
    .bind(&v.repository_uid)
    .bind(v.kind.as_str())
    .bind(&v.version)
    .bind(&v.description)
    .bind(&v.manifest)
    .bind(v.build_at)
    .bind(v.upload_status.as_str())
    .bind(new.creator_uid)
    .bind(v.created_at)
    .bind(v.push_claimed_at)
    .bind(new.claim_holder)
    .execute(ex)
    .await
    .map_err(db_error_named(format!("{} version {:?}", new.kind.as_str(), new.version)))?;
    Ok(v)
}

/// Locks a version's row until `tx` ends (see [`super::lock_row`]): writes of what belongs to a
/// version (its labels, model tags, image build, deletion) take turns, and each sees what the one
/// before it committed. A version deleted meanwhile is not found.
pub async fn lock(
    tx: &mut sqlx::Transaction<'_, Any>,
    uid: &str,
    lock: super::RowLock,
) -> Result<(), Error> {
    super::lock_row(tx, "versions", "version", uid, lock).await
}

/// Finds a version of a repository.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    repository_uid: &str,
    version: &str,
) -> Result<Option<Version>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM versions WHERE repository_uid = $1 AND version = $2"
    ))
    .bind(repository_uid)
    .bind(version)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// Finds a version by its tag in an organization: the repository (of `kind`) named
/// `repository`, and its version `version`. One statement, where finding the repository first
/// and then its version took two trips to the database for every request naming a version.
pub async fn find_by_tag<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    kind: Kind,
    repository: &str,
    version: &str,
) -> Result<Option<Version>, Error> {
    sqlx::query_as(&format!(
        "SELECT {columns} FROM repositories r JOIN versions v ON v.repository_uid = r.uid \
         WHERE r.organization_uid = $1 AND r.kind = $2 AND r.name = $3 AND v.version = $4",
        columns = prefixed("v", COLUMNS),
    ))
    .bind(organization_uid)
    .bind(kind.as_str())
    .bind(repository)
    .bind(version)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// Finds a version by uid.
pub async fn find_by_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<Option<Version>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM versions WHERE uid = $1"))
        .bind(uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// The pushed model versions a bento version uses, in an organization, by model tag (models
/// not pushed yet are left out). One statement, where a lookup per model took two.
pub async fn models_of_bento<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    bento_uid: &str,
) -> Result<Vec<Version>, Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM bento_models m \
         JOIN repositories r ON r.organization_uid = $1 AND r.kind = $2 AND r.name = m.model_name \
         JOIN versions v ON v.repository_uid = r.uid AND v.version = m.model_version \
         WHERE m.bento_uid = $3 ORDER BY m.model_name, m.model_version",
        prefixed("v", COLUMNS)
    ))
    .bind(organization_uid)
    .bind(Kind::Model.as_str())
    .bind(bento_uid)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// The bento versions of an organization that use a model version, by uid. One statement.
pub async fn bentos_using_model<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    model_name: &str,
    model_version: &str,
) -> Result<Vec<Version>, Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM bento_models m JOIN versions v ON v.uid = m.bento_uid \
         WHERE m.organization_uid = $1 AND m.model_name = $2 AND m.model_version = $3 ORDER BY m.bento_uid",
        prefixed("v", COLUMNS)
    ))
    .bind(organization_uid)
    .bind(model_name)
    .bind(model_version)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// Sort orders of version lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionOrder {
    /// Newest build first (what "latest" means to the clients).
    #[default]
    NewestFirst,
    OldestFirst,
    /// By repository name, then newest first.
    Name,
}

/// Filters of a version list.
#[derive(Debug, Clone, Default)]
pub struct VersionFilter {
    /// Only this repository.
    pub repository_uid: Option<String>,
    /// A substring of the repository name or the version.
    pub search: String,
    /// Every `(key, value)` label must be present.
    pub labels: Vec<(String, String)>,
    /// Only versions in this upload status.
    pub upload_status: Option<UploadStatus>,
    pub order: VersionOrder,
}

/// A page of versions, its total, and what an answer shows beside them.
#[derive(Debug, Clone)]
pub struct VersionPage {
    pub versions: Vec<Version>,
    /// How many versions the filter selects in all.
    pub total: i64,
    pub related: Related,
}

/// A row of [`rows_after_head`]: the head, then each row after it (a version, or a version and
/// what is read beside it).
enum HeadOrRow<H, R> {
    Head(H),
    Row(Box<R>),
}

impl<'r, H, R> sqlx::FromRow<'r, sqlx::any::AnyRow> for HeadOrRow<H, R>
where
    H: sqlx::FromRow<'r, sqlx::any::AnyRow>,
    R: sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        if row.try_get::<i32, _>("part")? == 0 {
            Ok(HeadOrRow::Head(H::from_row(row)?))
        } else {
            Ok(HeadOrRow::Row(Box::new(R::from_row(row)?)))
        }
    }
}

/// A row of a PostgreSQL page of versions: the version, and its repository from the same row
/// (its columns renamed [`REPOSITORY_PREFIX`]`{column}`).
struct VersionAndRepository(Version, repositories::Repository);

/// The head row of a PostgreSQL page of versions: `part`, the total and the related rows (see
/// [`rows_after_head`]).
type PageHead = (i32, i64, String, String, String, String);

/// What a PostgreSQL page of versions names its repository's columns (`repository__uid`, ...),
/// apart from the version's.
const REPOSITORY_PREFIX: &str = "repository__";

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for VersionAndRepository {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(VersionAndRepository(
            Version::from_row(row)?,
            repositories::Repository::from_columns(row, REPOSITORY_PREFIX)?,
        ))
    }
}

/// What [`rows_after_head`] reads: after the common table expressions `ctes`, one row of `head`
/// (expressions named `names`), then the versions of the relation `relation` (the columns of a
/// version, then `extra`) in `order` (over the alias `x`).
pub(crate) struct AfterHead<'a> {
    pub ctes: &'a str,
    pub head: &'a str,
    pub names: &'a [&'a str],
    pub relation: &'a str,
    pub extra: &'a [&'a str],
    pub order: &'a str,
}

/// PostgreSQL: reads [`AfterHead`]: the head row, its version columns null (a UNION types them
/// from the versions'), then the versions as rows. `H` reads the head row by position, from its
/// first column, `part` (0).
///
/// Why not JSON, as on SQLite: encoding each version as JSON (every text escaped character by
/// character, the manifest's too) cost PostgreSQL about a fifth of a fresh page of 20 (pgbench,
/// 10,000 bentos: 1.0-1.1 -> 0.8-0.9 ms), and the server parsed it back. SQLite's driver hands
/// each row from its thread on its own, so there one row of JSON is cheaper (see `related`).
pub(crate) async fn rows_after_head<H, R>(
    db: &Db,
    args: &Args,
    read: AfterHead<'_>,
) -> Result<(H, Vec<R>), Error>
where
    H: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    // The versions are read by column name: a head column of the same name would be taken for
    // theirs.
    let columns: Vec<&str> = COLUMNS
        .split(',')
        .map(str::trim)
        .chain(read.extra.iter().copied())
        .collect();
    debug_assert!(
        read.names
            .iter()
            .chain(["part"].iter())
            .all(|n| !columns.contains(n)),
        "a head column is named as a version column"
    );
    // The first branch names a UNION's columns; the second lists the same, in the same order.
    let nulls: Vec<String> = columns.iter().map(|c| format!("NULL AS {c}")).collect();
    let sql = format!(
        "{ctes} SELECT x.* FROM (\
         SELECT 0 AS part, h.*, {nulls} FROM (SELECT {head}) h({names}) \
         UNION ALL SELECT 1, {head_nulls}, {values} FROM {relation} v) x ORDER BY x.part, {order}",
        ctes = read.ctes,
        head = read.head,
        nulls = nulls.join(", "),
        names = read.names.join(", "),
        head_nulls = vec!["NULL"; read.names.len()].join(", "),
        values = prefixed("v", &columns.join(", ")),
        relation = read.relation,
        order = read.order,
    );
    let mut first = None;
    let mut rows = Vec::new();
    for row in args.fetch_all_kept::<HeadOrRow<H, R>>(db, &sql).await? {
        match row {
            HeadOrRow::Head(h) => first = Some(h),
            HeadOrRow::Row(r) => rows.push(*r),
        }
    }
    let head =
        first.ok_or_else(|| Error::Internal("a page was read without its head row".into()))?;
    Ok((head, rows))
}

/// A page of the versions of one kind in an organization, with its total and [`Related`] rows,
/// in one statement (one snapshot, one trip).
///
/// The plans are chosen here, not left to the engine (SQLite plans without statistics): the
/// total is a sum over the repositories of what [`counts`] keeps, or, filtered further than one
/// label, counted repository by repository from `versions_by_repository_newest`; the page
/// of an organization-wide list is read in `versions_newest` order (`CROSS JOIN` keeps SQLite's
/// loop order; PostgreSQL plans it as a plain join), each row checked against its repository,
/// until it is full; filtered by labels and by age, in the order of `counts::LABELLED_NEWEST`
/// from its first label. `bench/EXPLAIN.md` shows the plans.
pub async fn list(
    db: &Db,
    organization_uid: &str,
    kind: Kind,
    filter: &VersionFilter,
    page: Page,
) -> Result<VersionPage, Error> {
    let mut args = Args::default();
    // What selects the repositories (a version has the kind of its repository; the
    // repository's is the one indexed) ...
    let (org, kind) = (args.push(organization_uid), args.push(kind.as_str()));
    let mut repository_wheres = vec![
        format!("r.organization_uid = {org}"),
        format!("r.kind = {kind}"),
    ];
    let repo = filter.repository_uid.as_ref().map(|repo| args.push(repo));
    if let Some(repo) = &repo {
        repository_wheres.push(format!("r.uid = {repo}"));
    }
    // ... and their versions (one repository's read in its index).
    let mut wheres = repository_wheres.clone();
    wheres.push("r.uid = v.repository_uid".to_string());
    if let Some(repo) = &repo {
        wheres.push(format!("v.repository_uid = {repo}"));
    }
    let search = (!filter.search.is_empty()).then(|| args.like_pattern(&filter.search));
    // A search of three characters or more and nothing else is answered through the trigrams
    // the triggers keep (`counts::TRIGRAMS`; the total and the page below).
    let trigrams = match &search {
        Some(_) if filter.labels.is_empty() && filter.upload_status.is_none() => {
            counts::trigram_search(&mut args, &org, &kind, &filter.search)
        }
        _ => None,
    };
    let backend = db.backend();
    // PostgreSQL keeps one plan for that search (its LIMIT is written, below) when the plan
    // costs no more than one made for the values, and planning it for its values was the most
    // of its cost: 1.6 ms of 2.3 at 10,000 bentos. But a kept plan knows nothing of the pattern
    // and took `LIKE` to match a hundredth of the rows, so it sorted every version rather than
    // walk them in order for the page (4.4 ms). The filter is written as a CASE, which the
    // planner takes to match half the rows: the walk is planned as a walk, and which read runs
    // is chosen by the statement itself from the counts. pgbench, the search of `bench/api`:
    // 0.77 ms kept against 2.2 ms planned each run. SQLite plans without statistics.
    if let Some(p) = &search {
        let matches = like_any(&["r.name", "v.version"], p);
        wheres.push(match (backend, &trigrams) {
            (super::DbBackend::Postgres, Some(_)) => opaque(&matches),
            _ => matches,
        });
    }
    if let Some(s) = filter.upload_status {
        wheres.push(format!("v.upload_status = {}", args.push(s.as_str())));
    }
    // A label filter, two ways with the same values: the total starts from the versions that
    // carry the label (`labels_by_pair`), the page checks each row it reads in order ...
    let (mut count_wheres, mut page_wheres) = (wheres.clone(), wheres);
    let mut label_args = Vec::new();
    for (k, v) in &filter.labels {
        let (k, v) = (args.push(k), args.push(v));
        label_args.push((k.clone(), v.clone()));
        count_wheres.push(format!(
            "v.uid IN (SELECT l.resource_uid FROM labels l WHERE l.label_key = {k} AND l.label_value = {v})"
        ));
        page_wheres.push(format!(
            "EXISTS (SELECT 1 FROM labels l WHERE l.resource_uid = v.uid AND l.label_key = {k} AND l.label_value = {v})"
        ));
    }
    // ... except an organization-wide page by age, which reads the versions carrying the first
    // label in list order from the index the triggers keep (`counts::LABELLED_NEWEST`): 20 rows
    // for a page of 20 however rare the label, where the walk of every newest version checked
    // hundreds for a label on a tenth of them.
    let by_label = match (&filter.repository_uid, filter.order, label_args.first()) {
        (None, VersionOrder::NewestFirst | VersionOrder::OldestFirst, Some((k, v))) => {
            let first = page_wheres.len() - filter.labels.len();
            page_wheres[first] = format!(
                "x.organization_uid = {org} AND x.kind = {kind} AND x.label_key = {k} AND x.label_value = {v} \
                 AND v.uid = x.version_uid"
            );
            true
        }
        _ => false,
    };
    // Each order is an index order (see migration 0007), and is written twice: for the page
    // and for its rows (over the page's columns; on PostgreSQL, which sorts them, the repository
    // name as `repository__name`, see `beside` below; SQLite's are sorted by `sort_as_listed`).
    let labelled = format!(
        "{} x CROSS JOIN versions v CROSS JOIN repositories r",
        counts::LABELLED
    );
    let (tables, order, rows_order) = match filter.order {
        VersionOrder::NewestFirst if by_label => (
            labelled.as_str(),
            "x.build_at DESC, x.created_at DESC, x.version_uid DESC",
            "p.build_at DESC, p.created_at DESC, p.uid DESC",
        ),
        VersionOrder::OldestFirst if by_label => (
            labelled.as_str(),
            "x.build_at, x.created_at, x.version_uid",
            "p.build_at, p.created_at, p.uid",
        ),
        VersionOrder::NewestFirst => (
            "versions v CROSS JOIN repositories r",
            "v.build_at DESC, v.created_at DESC, v.uid DESC",
            "p.build_at DESC, p.created_at DESC, p.uid DESC",
        ),
        VersionOrder::OldestFirst => (
            "versions v CROSS JOIN repositories r",
            "v.build_at, v.created_at, v.uid",
            "p.build_at, p.created_at, p.uid",
        ),
        VersionOrder::Name => (
            "repositories r CROSS JOIN versions v",
            "r.name, v.build_at DESC, v.created_at DESC, v.uid DESC",
            "p.repository__name, p.build_at DESC, p.created_at DESC, p.uid DESC",
        ),
    };
    let json = JsonSql(db.backend());
    // The total: without a filter on the versions themselves but one label, the sum of the
    // counts the triggers keep per repository (one row per repository); else counted, an inner
    // join in any order, the engine counts from the repositories.
    //
    // A search of three characters or more and nothing else: the versions of the repositories
    // whose name matches, from the counts, and the versions of the others whose string matches,
    // found from their trigrams (`counts::TRIGRAMS`), not by reading every version; counted as
    // before when its trigrams are all common.
    let repository_wheres = repository_wheres.join(" AND ");
    // Membership in a subquery's rows: PostgreSQL plans `IN (subquery)` as a join and, not
    // knowing how few rows a search's candidates are, read every version to meet them (3.4 ms
    // at 10,000 bentos); an array it reads by index, one lookup per candidate.
    let member = |expr: &str, subquery: &str| match backend {
        super::DbBackend::Sqlite => format!("{expr} IN ({subquery})"),
        super::DbBackend::Postgres => format!("{expr} = ANY(ARRAY({subquery}))"),
    };
    let counted = format!(
        "SELECT COUNT(*) FROM repositories r, versions v WHERE {}",
        count_wheres.join(" AND ")
    );
    let total = match (&search, &trigrams) {
        (Some(p), Some(t)) => {
            let name_matches = like_any(&["r.name"], p);
            format!(
                "SELECT CASE WHEN {indexed} THEN {by_name} + (SELECT COUNT(*) FROM versions v CROSS JOIN repositories r \
                   WHERE {in_candidates} AND r.uid = v.repository_uid AND {repository_wheres} \
                   AND NOT {name_matches} AND {version_matches}) ELSE ({counted}) END",
                indexed = t.indexed,
                by_name = "(SELECT named FROM sums)",
                version_matches = like_any(&["v.version"], p),
                in_candidates = member("v.uid", &t.candidates),
            )
        }
        _ if filter.search.is_empty()
            && filter.labels.len() <= 1
            && filter.upload_status.is_none() =>
        {
            let label = label_args.first().map(|(k, v)| (k.as_str(), v.as_str()));
            counts::sum(&repository_wheres, label)
        }
        _ => counted,
    };
    // An unfiltered page, or one of a label read from its index, is written with its LIMIT, so
    // PostgreSQL may keep one plan for it (see `limit_offset`): either reads the page's rows and
    // no more, whatever the values. A page filtered otherwise binds it, so a plan is made for its
    // values (a search that matches little, or a label checked row by row, would make a kept plan
    // walk every version). Measured with PostgreSQL 15 at 10,000 bentos, a page of a label:
    // 0.56 ms kept against 1.2 ms planned each time, and 0.2 ms for a label on one version. A
    // search through the trigrams writes it on PostgreSQL: the statement chooses between its
    // walk and its gathered matches itself, so one plan serves every pattern (see above).
    let (count, start) = limit_offset(page);
    let (limit, offset) = if ((filter.labels.is_empty() || (by_label && filter.labels.len() == 1))
        && filter.search.is_empty()
        && filter.upload_status.is_none())
        || (backend == super::DbBackend::Postgres && trigrams.is_some())
    {
        (count.to_string(), start.to_string())
    } else {
        (args.push(count), args.push(start))
    };
    // A page past the total is not read (an offset past a small organization's rows would
    // otherwise walk every organization's versions).
    let page_wheres = page_wheres.join(" AND ");
    let columns = prefixed("v", COLUMNS);
    // What each row of the page carries beside its version: on PostgreSQL its repository, read
    // back from the version's row rather than aggregated as JSON and parsed (see the end); on
    // SQLite nothing (its rows are aggregated as JSON and sorted after reading).
    let beside = match backend {
        super::DbBackend::Sqlite => String::new(),
        super::DbBackend::Postgres => format!(
            ", {}",
            repositories::prefixed_columns("r", REPOSITORY_PREFIX)
        ),
    };
    let (page_sql, choice) = match (&search, &trigrams) {
        // A search found by trigrams: its matches gathered (the versions of the repositories
        // whose name matches, and the candidates of the others) and sorted, or the versions read
        // in order, each checked, until the page is full. Gathering reads each match, about
        // 11,000 instructions apiece on SQLite; reading in order reads (start + count) x all /
        // matches rows, about twice that apiece (callgrind, 10,000 bentos). So: gathered while
        // matches^2 <= 2 x (start + count) x all, and the candidates are few.
        //
        // The read not chosen reads nothing. SQLite is told so by a LIMIT of 0, which it honours
        // before reading (a false condition on the total in the WHERE still let it read);
        // PostgreSQL by that condition (a one-time filter) above the read, as a LIMIT it cannot
        // see hides the page's size from its plan, which then read in parallel for 20 rows, and a
        // filter inside the read still started its parallel workers (both found by review).
        //
        // The choice is made once, in its own CTE (`choice`), which both reads consult: written
        // into each, its count of all versions ran twice in PostgreSQL.
        (Some(p), Some(t)) => {
            let all = "(SELECT every FROM sums)";
            // 2 x (start + count), at most 2^31: past the total nothing is read anyway, and the
            // products below stay within 64 bits (a start near 2^62 overflowed PostgreSQL's).
            let reach = start.saturating_add(count).saturating_mul(2).min(1 << 31);
            let choice = format!(
                "choice AS (SELECT ({indexed} AND (SELECT n FROM total) * (SELECT n FROM total) <= {reach} * {all}) AS gather), ",
                indexed = t.indexed,
            );
            let gather = "(SELECT gather FROM choice)";
            // PostgreSQL's one-time filter above a read.
            let only_if = |read: &str, chosen: &str| {
                format!(
                    "SELECT * FROM ({read}) chosen WHERE (SELECT n FROM total) > {offset} AND {chosen}"
                )
            };
            let read = |tables: &str, wheres: &str, chosen: &str| match backend {
                super::DbBackend::Sqlite => format!(
                    "SELECT {columns}{beside} FROM {tables} WHERE {wheres} ORDER BY {order} \
                     LIMIT CASE WHEN (SELECT n FROM total) > {offset} AND {chosen} THEN {limit} ELSE 0 END OFFSET {offset}"
                ),
                super::DbBackend::Postgres => only_if(
                    &format!(
                        "SELECT {columns}{beside} FROM {tables} WHERE {wheres} \
                         ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                    ),
                    chosen,
                ),
            };
            // The organization's repositories of the kind, and those of them whose name matches.
            let of_kind = format!(
                "SELECT m.uid FROM repositories m WHERE m.organization_uid = {org} AND m.kind = {kind}"
            );
            let named = format!("{of_kind} AND {}", like_any(&["m.name"], p));
            // The matches are chosen apart from the order, so that PostgreSQL reads them by
            // index rather than walk every version in order for the page (`OFFSET 0` keeps
            // it from merging the two; SQLite reads them by index either way).
            let apart = match backend {
                super::DbBackend::Sqlite => "",
                super::DbBackend::Postgres => " OFFSET 0",
            };
            let matches = format!(
                "(SELECT * FROM versions v WHERE {in_named} OR {in_candidates}{apart}) v CROSS JOIN repositories r",
                in_named = member("v.repository_uid", &named),
                in_candidates = member("v.uid", &t.candidates),
            );
            // PostgreSQL, an organization-wide walk by age: each version read is checked against
            // two sets, each read once and hashed (the organization's repositories of the kind,
            // and those whose name matches), not by looking up its repository: the page's rows
            // alone are joined to theirs. pgbench, the search of `bench/api` (160 versions
            // walked for 20): 0.91 -> 0.85 ms (0.80 with the sums below).
            let walk = match (backend, &filter.repository_uid, filter.order) {
                (
                    super::DbBackend::Postgres,
                    None,
                    VersionOrder::NewestFirst | VersionOrder::OldestFirst,
                ) => {
                    let checked = opaque(&format!(
                        "v.repository_uid IN ({of_kind}) AND (v.repository_uid IN ({named}) OR {})",
                        like_any(&["v.version"], p),
                    ));
                    only_if(
                        &format!(
                            "SELECT w.*{beside} FROM (SELECT {columns} FROM versions v \
                             WHERE {checked} ORDER BY {order} LIMIT {limit} OFFSET {offset}) w \
                             JOIN repositories r ON r.uid = w.repository_uid"
                        ),
                        &format!("NOT {gather}"),
                    )
                }
                _ => read(tables, &page_wheres, &format!("NOT {gather}")),
            };
            let page_sql = format!(
                "SELECT * FROM ({walk}) w UNION ALL SELECT * FROM ({gathered}) g",
                gathered = read(&matches, &page_wheres, gather),
            );
            (page_sql, choice)
        }
        _ => (
            format!(
                "SELECT {columns}{beside} FROM {tables} WHERE {page_wheres} AND (SELECT n FROM total) > {offset} \
                 ORDER BY {order} LIMIT {limit} OFFSET {offset}"
            ),
            String::new(),
        ),
    };
    // SQLite reads a CTE used more than once only once, unless it is a compound (the search's
    // two reads): that one it read again for each use (the rows and each kind of related row),
    // five times, unless told to keep it. Told so, a plain page cost 12 % more instructions, so
    // only the compound is. PostgreSQL keeps a CTE used more than once.
    let kept = match (backend, &trigrams) {
        (super::DbBackend::Sqlite, Some(_)) => "MATERIALIZED ",
        _ => "",
    };
    // With the trigrams' rarest, the sums of the counts a search reads: of the repositories whose
    // name matches, for its total, and of all, for its choice (one read of the counts, not two).
    let search_ctes = match (&search, &trigrams) {
        (Some(p), Some(t)) => format!(
            "rarest AS ({}), sums AS ({}), ",
            t.rarest,
            counts::sums(&repository_wheres, &like_any(&["r.name"], p))
        ),
        _ => String::new(),
    };
    let ctes = format!(
        "WITH {search_ctes}total AS (SELECT ({total}) AS n), {choice}\
         page AS {kept}({page_sql}), \
         page_repositories AS (SELECT {repository_columns} FROM repositories r WHERE r.uid IN (SELECT repository_uid FROM page))",
        repository_columns = prefixed("r", repositories::COLUMNS),
    );
    match backend {
        // SQLite: one row, the page's rows in a JSON array beside the related ones (sqlx's SQLite
        // driver hands each row from its thread on its own: see `related`).
        super::DbBackend::Sqlite => {
            let sql = format!(
                "{ctes} SELECT (SELECT n FROM total), {rows}, {related}",
                rows =
                    json.rows_sorted_by_reader(&json.row("p", COLUMNS), "FROM page p", rows_order),
                related = Related::columns(json, "page", "page_repositories"),
            );
            let (total, rows, r, l, b, u): (i64, String, String, String, String, String) =
                args.fetch_one(db, &sql).await?;
            let mut versions: Vec<Version> = from_json("versions", &rows)?;
            let related = Related::from_columns(json, &(r, l, b, u))?;
            sort_as_listed(&mut versions, filter.order, &related);
            Ok(VersionPage {
                versions,
                total,
                related,
            })
        }
        // PostgreSQL: the page's rows as rows, each with its repository, after one with the
        // total and the other related rows. The repositories as JSON, encoded by PostgreSQL and
        // parsed here, were a fifth of the statement (pgbench, a fresh page of 20 at 10,000
        // bentos: 0.96-1.00 -> 0.75-0.78 ms).
        super::DbBackend::Postgres => {
            let extra: Vec<String> = repositories::COLUMNS
                .split(',')
                .map(|c| format!("{REPOSITORY_PREFIX}{}", c.trim()))
                .collect();
            let ((_, total, r, l, b, u), rows): (PageHead, Vec<VersionAndRepository>) =
                rows_after_head(
                    db,
                    &args,
                    AfterHead {
                        ctes: &ctes,
                        head: &format!(
                            "(SELECT n FROM total), {}",
                            Related::columns_beside_repositories(json, "page", "page_repositories")
                        ),
                        names: &[&["total"][..], &Related::NAMES].concat(),
                        relation: "page",
                        extra: &extra.iter().map(String::as_str).collect::<Vec<_>>(),
                        order: &rows_order.replace("p.", "x."),
                    },
                )
                .await?;
            let (versions, repositories): (Vec<Version>, Vec<repositories::Repository>) = rows
                .into_iter()
                .map(|VersionAndRepository(v, r)| (v, r))
                .unzip();
            Ok(VersionPage {
                versions,
                total,
                related: Related::from_columns(json, &(r, l, b, u))?
                    .with_repositories(repositories),
            })
        }
    }
}

/// Puts a page read in no order (SQLite's, see [`JsonSql::rows_sorted_by_reader`]) in the order
/// its statement read it in: the columns of `list`'s ORDER BYs, compared as SQLite compares them
/// (integers; text by its bytes, as `str` does). By name, the repository's, from `related`.
fn sort_as_listed(versions: &mut [Version], order: VersionOrder, related: &Related) {
    let oldest = |a: &Version, b: &Version| {
        (a.build_at, a.created_at, &a.uid).cmp(&(b.build_at, b.created_at, &b.uid))
    };
    match order {
        VersionOrder::NewestFirst => versions.sort_unstable_by(|a, b| oldest(b, a)),
        VersionOrder::OldestFirst => versions.sort_unstable_by(oldest),
        VersionOrder::Name => {
            let name = |v: &Version| {
                related
                    .repository(&v.repository_uid)
                    .map(|r| r.name.clone())
            };
            versions.sort_by_cached_key(|v| {
                (
                    name(v),
                    std::cmp::Reverse((v.build_at, v.created_at, v.uid.clone())),
                )
            })
        }
    }
}

/// Counts the versions of a repository.
pub async fn count_in_repository<'c>(
    ex: impl Executor<'c, Database = Any>,
    repository_uid: &str,
) -> Result<i64, Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM versions WHERE repository_uid = $1")
        .bind(repository_uid)
        .fetch_one(ex)
        .await
        .map_err(db_error)
}

/// Replaces the description.
pub async fn update_description<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    description: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE versions SET description = $1, updated_at = $2 WHERE uid = $3")
        .bind(description)
        .bind(now_micros())
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Writes the manifest of a push by `holder` (credentials and connection; a claim made with the
/// bare `credentials`, by a version's creation, admits every connection of them), unless another
/// holder claimed the version less than
/// `claim_secs` ago or an upload of it is still running (active since `active_since`); returns
/// whether it did.
/// A version that serves no archive takes the manifest at once; one that serves an archive keeps
/// its manifest, and the push's one waits for that push's archive (see [`finish_success`]).
pub async fn claim_push<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    holder: &str,
    credentials: &str,
    manifest: &str,
    claim_secs: i64,
    active_since: i64,
) -> Result<bool, Error> {
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE versions SET \
           manifest = CASE WHEN object_key IS NULL THEN $1 ELSE manifest END, \
           push_manifest = CASE WHEN object_key IS NULL THEN NULL ELSE $1 END, \
           push_claimed_at = $2, push_claim_holder = $6, updated_at = $2 \
         WHERE uid = $3 AND (push_claimed_at IS NULL OR push_claimed_at < $4 OR push_claim_holder = $6 OR push_claim_holder = $7) \
           AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.version_uid = $3 AND u.status = 'uploading' AND u.active_at >= $5)",
    )
    .bind(manifest)
    .bind(now)
    .bind(uid)
    .bind(now - claim_secs * 1_000_000)
    .bind(active_since)
    .bind(holder)
    .bind(credentials)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Marks the first upload of a version as started. A version that serves an archive keeps its
/// status: a re-push in progress does not change what it serves.
pub async fn start_upload<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<(), Error> {
    let now = now_micros();
    sqlx::query(
        "UPDATE versions SET upload_status = $1, upload_started_at = $2, upload_finished_at = NULL, upload_finished_reason = '', \
         updated_at = $2 WHERE uid = $3 AND object_key IS NULL",
    )
    .bind(UploadStatus::Uploading.as_str())
    .bind(now)
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Makes `new_key` the served archive, with the `manifest` of its push, if the served one is
/// still `expected_old_key` (of two concurrent pushes only the first to finish wins); returns
/// whether it did.
pub async fn finish_success<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    expected_old_key: Option<&str>,
    new_key: &str,
    size: i64,
    sha256: &str,
    manifest: &str,
) -> Result<bool, Error> {
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE versions SET upload_status = $1, upload_finished_at = $2, upload_finished_reason = '', object_key = $3, \
         archive_size = $4, archive_sha256 = $5, manifest = $6, push_manifest = NULL, push_claimed_at = NULL, push_claim_holder = NULL, updated_at = $2 \
         WHERE uid = $7 AND COALESCE(object_key, '') = $8",
    )
    .bind(UploadStatus::Success.as_str())
    .bind(now)
    .bind(new_key)
    .bind(size)
    .bind(sha256)
    .bind(manifest)
    .bind(uid)
    .bind(expected_old_key.unwrap_or(""))
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Records that the first push of a version failed, with its reason. A version that serves an
/// archive is left as it is (the reason stays on the upload). The push's claim is ended apart
/// ([`release_claim`]): cleared here too, a claim the next push made once the failed upload had
/// gone quiet was lost with it.
pub async fn finish_failed<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    reason: &str,
) -> Result<(), Error> {
    let now = now_micros();
    sqlx::query("UPDATE versions SET upload_status = $1, upload_finished_at = $2, upload_finished_reason = $3, updated_at = $2 \
                 WHERE uid = $4 AND object_key IS NULL")
        .bind(UploadStatus::Failed.as_str())
        .bind(now)
        .bind(reason)
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Ends a push's claim on a version: another push may write the manifest at once, and a
/// manifest the push proposed is dropped. When the push ends because its upload failed, pass the
/// upload's last sign of life as read (`Upload::active_at`, before it was ended): only a claim
/// made by then is the push's own (it claimed, then uploaded). Another push can claim only once
/// the upload has ended or gone quiet, so a later claim is that push's and is kept (released, its
/// archive would have been served with the manifest from before it). `None`: the caller holds
/// the claim.
pub async fn release_claim<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    claimed_by: Option<i64>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE versions SET push_claimed_at = NULL, push_claim_holder = NULL, push_manifest = NULL \
         WHERE uid = $1 AND ($2 IS NULL OR push_claimed_at IS NULL OR push_claimed_at <= $2)",
    )
    .bind(uid)
    .bind(claimed_by)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Returns a version whose first upload was abandoned (no upload of it is running any more) to
/// `pending`, the state it had before; returns whether it did.
pub async fn reset_abandoned<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE versions SET upload_status = $1, upload_started_at = NULL, updated_at = $2 \
         WHERE uid = $3 AND object_key IS NULL AND upload_status = $4 \
           AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.version_uid = $3 AND u.status = 'uploading')",
    )
    .bind(UploadStatus::Pending.as_str())
    .bind(now_micros())
    .bind(uid)
    .bind(UploadStatus::Uploading.as_str())
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// Versions stuck `uploading` with no upload running, whose upload started before `before`
/// (a client marked the upload started, then never sent a byte).
pub async fn stuck_uploading<'c>(
    ex: impl Executor<'c, Database = Any>,
    before: i64,
) -> Result<Vec<String>, Error> {
    sqlx::query_scalar(
        "SELECT v.uid FROM versions v WHERE v.upload_status = $1 AND v.object_key IS NULL \
           AND COALESCE(v.upload_started_at, 0) < $2 \
           AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.version_uid = v.uid AND u.status = 'uploading')",
    )
    .bind(UploadStatus::Uploading.as_str())
    .bind(before)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// Deletes a version row.
pub async fn delete<'c>(ex: impl Executor<'c, Database = Any>, uid: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM versions WHERE uid = $1")
        .bind(uid)
        .execute(ex)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// `condition` as PostgreSQL's planner cannot see into: it takes it to hold for half the rows
/// whatever the values (a kept plan of a search then walks in order rather than sort every
/// version), and plans the `IN (subquery)` inside it as sets read once and hashed, not as joins.
fn opaque(condition: &str) -> String {
    format!("(CASE WHEN {condition} THEN TRUE ELSE FALSE END)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::query::JsonSql;
    use crate::db::DbBackend;

    fn version(uid: &str, repository_uid: &str, build_at: i64, created_at: i64) -> Version {
        let new = NewVersion {
            repository_uid,
            kind: Kind::Bento,
            version: uid,
            description: "",
            manifest: "{}",
            build_at,
            creator_uid: "u",
            claim_holder: "h",
        };
        Version {
            uid: uid.into(),
            created_at,
            ..Version::pending(&new)
        }
    }

    fn related(repositories: &[(&str, &str)]) -> Related {
        let rows = repositories
            .iter()
            .map(|(uid, name)| {
                format!(
                    r#"{{"uid":"{uid}","organization_uid":"o","kind":"bento","name":"{name}","description":"","creator_uid":null,"created_at":0,"updated_at":null}}"#
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let columns = (format!("[{rows}]"), "[]".into(), "[]".into(), "[]".into());
        Related::from_columns(JsonSql(DbBackend::Sqlite), &columns).unwrap()
    }

    fn uids(versions: &[Version]) -> Vec<&str> {
        versions.iter().map(|v| v.uid.as_str()).collect()
    }

    /// A page SQLite read in no order is put in the order of its statement's ORDER BY: by build
    /// time, then creation, then uid (bytes: "B" before "a"), and by repository name first.
    #[test]
    fn a_page_read_in_no_order_is_sorted_as_its_statement_orders_it() {
        let related = related(&[("r1", "zeta"), ("r2", "Alpha"), ("r3", "alpha")]);
        let page = || {
            vec![
                version("a", "r1", 10, 1),
                version("B", "r1", 10, 1),
                version("c", "r2", 10, 2),
                version("d", "r3", 5, 9),
                version("e", "r1", 20, 0),
            ]
        };
        let mut newest = page();
        sort_as_listed(&mut newest, VersionOrder::NewestFirst, &related);
        assert_eq!(uids(&newest), ["e", "c", "a", "B", "d"]);
        let mut oldest = page();
        sort_as_listed(&mut oldest, VersionOrder::OldestFirst, &related);
        assert_eq!(uids(&oldest), ["d", "B", "a", "c", "e"]);
        let mut by_name = page();
        sort_as_listed(&mut by_name, VersionOrder::Name, &related);
        assert_eq!(uids(&by_name), ["c", "d", "e", "a", "B"]);
    }

    /// Labels read in no order (SQLite) are put in key order by bytes, as SQLite sorts text;
    /// PostgreSQL's, read in its collation's order, are kept as read.
    #[test]
    fn labels_are_sorted_by_key_where_the_reader_sorts() {
        let labels = r#"[["v","team","x"],["v","Stage","y"],["v","area","z"]]"#.to_string();
        let columns = ("[]".to_string(), labels, "[]".to_string(), "[]".to_string());
        let keys = |backend| {
            Related::from_columns(JsonSql(backend), &columns)
                .unwrap()
                .labels("v")
                .iter()
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(DbBackend::Sqlite), ["Stage", "area", "team"]);
        assert_eq!(keys(DbBackend::Postgres), ["team", "Stage", "area"]);
    }
}
