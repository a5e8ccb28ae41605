//! Counts and indexes kept by triggers, so that a list's total and a repository's number of
//! versions are a lookup, not a count: how many versions each repository has ([`VERSIONS`]), and
//! how many of them carry each label ([`LABELS`]); so that a page of a label is read in list
//! order ([`LABELLED`]); and so that a search's total finds the versions whose string matches
//! without reading every version ([`TRIGRAMS`]).
//!
//! Counted, the total of an organization-wide version list walked every version of the
//! organization on every fresh read: 0.46 ms of SQLite's engine time at 10,000 bentos, about
//! 60 % of the list's whole statement, and about 1.8 ms on PostgreSQL; with a label filter,
//! 1.6 ms on SQLite (measured before the counts: bench/RESULTS.md, 2026-12-06). Summed over the
//! organization's repositories each is one row per repository (bench/EXPLAIN.md).
//!
//! Triggers keep them, not the code that writes, for the reason the generation is kept so
//! ([`super::generation`]): every write counts, whichever function, import or restore made it.
//! They are engine-specific, so they are installed after the migrations, and the tables are
//! bookkeeping, left out of backups: they are made from the data, never restored. Whenever
//! anything of them was missing or of an older text, or a migration ran, the counts are made
//! again from the data under a lock that holds writers off, so they start right whatever came before (a restore
//! into a database without the triggers, an older binary that wrote without them).
//!
//! A label counts where it is on a version. Either of a version and its label may be written
//! first in a transaction: whichever comes second finds the other and counts the pair, and a
//! deletion likewise. Not counted, as the server never makes them: `TRUNCATE`, writes with
//! triggers disabled, SQLite's `REPLACE`, a version's uid, build time or creation time changed
//! (the last two are sort keys of [`LABELLED`]), and one statement writing both
//! a version and its labels. An operator who makes them drops one of the triggers and restarts
//! the servers: the first to start makes the counts again.

use yatai_domain::Error;

use super::{db_error, Db, DbBackend};

/// Versions per repository: `(repository_uid, n)`.
pub const VERSIONS: &str = "_yatai_version_counts";
/// Versions carrying a label, per repository: `(repository_uid, label_key, label_value, n)`.
pub const LABELS: &str = "_yatai_label_counts";
/// Each label on a version, with its version's organization, kind and sort keys, so that a page
/// of the versions carrying a label is read in list order from one index ([`LABELLED_NEWEST`]).
pub const LABELLED: &str = "_yatai_labelled_versions";
/// The trigrams of each version string, lower-cased, in its organization and kind: a search's
/// total finds the versions whose string may contain the search from the trigrams they share,
/// instead of reading every version ([`trigram_search`]).
pub const TRIGRAMS: &str = "_yatai_version_trigrams";
/// The numbers 1 to [`INDEXED_CHARS`], which a trigger joins to cut a string into trigrams
/// (SQLite allows no recursive query in a trigger).
pub const POSITIONS: &str = "_yatai_positions";
/// How far into a version string its trigrams are kept (a version has at most 128 characters;
/// one imported longer is marked with the empty trigram, which every search reads).
const INDEXED_CHARS: i64 = 256;
/// The index of [`LABELLED`] in the order of a version list, newest first (read backwards,
/// oldest first), after the label and the organization's kind it selects.
pub const LABELLED_NEWEST: &str = "_yatai_labelled_versions_newest";

/// A table of counts and the columns it counts by.
#[derive(Clone, Copy)]
struct Counter {
    table: &'static str,
    keys: &'static [&'static str],
}

const BY_REPOSITORY: Counter = Counter {
    table: VERSIONS,
    keys: &["repository_uid"],
};
const BY_LABEL: Counter = Counter {
    table: LABELS,
    keys: &["repository_uid", "label_key", "label_value"],
};

impl Counter {
    fn create(self) -> String {
        let keys = self.keys.join(", ");
        let columns: Vec<String> = self
            .keys
            .iter()
            .map(|k| match *k {
                // A row goes with its repository.
                "repository_uid" => {
                    "repository_uid TEXT NOT NULL REFERENCES repositories (uid) ON DELETE CASCADE"
                        .to_string()
                }
                k => format!("{k} TEXT NOT NULL"),
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, n BIGINT NOT NULL, PRIMARY KEY ({keys}))",
            self.table,
            columns.join(", ")
        )
    }

    /// Adds the rows of `source` (a query with the key columns), in key order, so that two
    /// writers take the rows they share in the same order.
    fn add(self, source: &str) -> String {
        let keys = self.keys.join(", ");
        // `WHERE true`: SQLite reads an `ON` after a bare `FROM` as a join's.
        format!(
            "INSERT INTO {t} ({keys}, n) SELECT {keys}, COUNT(*) FROM ({source}) s WHERE true \
             GROUP BY {keys} ORDER BY {keys} ON CONFLICT ({keys}) DO UPDATE SET n = {t}.n + excluded.n",
            t = self.table
        )
    }

    /// Subtracts the rows of `source`; a row that reaches zero goes (a label value used once,
    /// a commit hash say, leaves nothing behind).
    fn subtract(self, backend: DbBackend, source: &str) -> String {
        let keys = self.keys.join(", ");
        let t = self.table;
        let gone = format!(
            "DELETE FROM {t} WHERE n = 0 AND ({keys}) IN (SELECT {keys} FROM ({source}) s)"
        );
        let subtract = match backend {
            // Row triggers: `source` is a row or a few.
            DbBackend::Sqlite => {
                let same: Vec<String> = self
                    .keys
                    .iter()
                    .map(|k| format!("s.{k} = {t}.{k}"))
                    .collect();
                format!(
                    "UPDATE {t} SET n = n - (SELECT COUNT(*) FROM ({source}) s WHERE {same}) \
                     WHERE ({keys}) IN (SELECT {keys} FROM ({source}) s)",
                    same = same.join(" AND ")
                )
            }
            DbBackend::Postgres => {
                let same: Vec<String> =
                    self.keys.iter().map(|k| format!("d.{k} = c.{k}")).collect();
                format!(
                    "UPDATE {t} AS c SET n = c.n - d.k FROM \
                     (SELECT {keys}, COUNT(*) AS k FROM ({source}) s GROUP BY {keys}) d WHERE {same}",
                    same = same.join(" AND ")
                )
            }
        };
        format!("{subtract}; {gone}")
    }

    /// Makes the counts again from `source`.
    fn recount(self, source: &str) -> [String; 2] {
        [format!("DELETE FROM {}", self.table), self.add(source)]
    }
}

/// The tables and the index the triggers keep, by name (what `installed` looks for).
const KEPT: [&str; 6] = [
    VERSIONS,
    LABELS,
    LABELLED,
    LABELLED_NEWEST,
    TRIGRAMS,
    POSITIONS,
];

/// What creates [`KEPT`] where missing (the numbers of [`POSITIONS`] included).
fn kept_create() -> Vec<String> {
    let mut sql = vec![BY_REPOSITORY.create(), BY_LABEL.create()];
    sql.extend(labelled_create());
    sql.extend(trigrams_create());
    sql
}

/// The columns of [`LABELLED`], as each source below selects them.
const LABELLED_COLUMNS: &str =
    "organization_uid, kind, label_key, label_value, build_at, created_at, version_uid";

/// The rows of [`LABELLED`]: one per label on a version.
///
/// A version's organization and kind are its repository's, which never change, and its sort
/// keys are written once, at its creation (the server never updates them; an operator who does
/// restarts the servers after dropping a trigger, as for a version's uid, see the module).
fn labelled_create() -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {LABELLED} (organization_uid TEXT NOT NULL, kind TEXT NOT NULL, \
             label_key TEXT NOT NULL, label_value TEXT NOT NULL, build_at BIGINT NOT NULL, \
             created_at BIGINT NOT NULL, version_uid TEXT NOT NULL, PRIMARY KEY (version_uid, label_key))"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {LABELLED_NEWEST} ON {LABELLED} (organization_uid, kind, \
             label_key, label_value, build_at DESC, created_at DESC, version_uid DESC)"
        ),
    ]
}

/// Adds the rows of `source` (a query of [`LABELLED_COLUMNS`]). A row already there is
/// written again rather than failing the write that made it.
fn labelled_add(source: &str) -> String {
    format!(
        "INSERT INTO {LABELLED} ({LABELLED_COLUMNS}) SELECT {LABELLED_COLUMNS} FROM ({source}) s WHERE true \
         ORDER BY version_uid, label_key ON CONFLICT (version_uid, label_key) DO UPDATE SET \
         organization_uid = excluded.organization_uid, kind = excluded.kind, label_value = excluded.label_value, \
         build_at = excluded.build_at, created_at = excluded.created_at"
    )
}

/// The rows of the versions `v` (a relation with `uid`, `repository_uid`, `build_at` and
/// `created_at`) for [`LABELLED`], from their labels.
fn labelled_of_versions(v: &str) -> String {
    format!(
        "SELECT r.organization_uid, r.kind, l.label_key, l.label_value, v.build_at, v.created_at, v.uid AS version_uid \
         FROM {v} v JOIN repositories r ON r.uid = v.repository_uid JOIN labels l ON l.resource_uid = v.uid"
    )
}

/// The rows of the labels `l` for [`LABELLED`]: those on a version.
fn labelled_of_labels(l: &str) -> String {
    format!(
        "SELECT r.organization_uid, r.kind, l.label_key, l.label_value, v.build_at, v.created_at, v.uid AS version_uid \
         FROM {l} l JOIN versions v ON v.uid = l.resource_uid JOIN repositories r ON r.uid = v.repository_uid"
    )
}

/// The table of [`TRIGRAMS`] and the numbers it is cut with.
fn trigrams_create() -> Vec<String> {
    let numbers: Vec<String> = (1..=INDEXED_CHARS).map(|i| format!("({i})")).collect();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {TRIGRAMS} (organization_uid TEXT NOT NULL, kind TEXT NOT NULL, \
             trigram TEXT NOT NULL, version_uid TEXT NOT NULL, PRIMARY KEY (organization_uid, kind, trigram, version_uid))"
        ),
        format!("CREATE INDEX IF NOT EXISTS {TRIGRAMS}_by_version ON {TRIGRAMS} (version_uid)"),
        format!("CREATE TABLE IF NOT EXISTS {POSITIONS} (i INTEGER PRIMARY KEY)"),
        format!(
            "INSERT INTO {POSITIONS} (i) VALUES {} ON CONFLICT (i) DO NOTHING",
            numbers.join(", ")
        ),
    ]
}

/// The trigrams of the versions `v` (a relation with `uid`, `repository_uid` and `version`):
/// each distinct lower-cased three characters, and the empty trigram for a string longer than
/// what is cut.
fn trigrams_of_versions(v: &str) -> String {
    format!(
        "SELECT DISTINCT r.organization_uid, r.kind, lower(substr(v.version, p.i, 3)) AS trigram, v.uid AS version_uid \
         FROM {v} v JOIN repositories r ON r.uid = v.repository_uid JOIN {POSITIONS} p ON p.i <= length(v.version) - 2 \
         UNION SELECT r.organization_uid, r.kind, '', v.uid FROM {v} v JOIN repositories r ON r.uid = v.repository_uid \
         WHERE length(v.version) > {INDEXED_CHARS}"
    )
}

fn trigrams_add(source: &str) -> String {
    format!(
        "INSERT INTO {TRIGRAMS} (organization_uid, kind, trigram, version_uid) \
         SELECT organization_uid, kind, trigram, version_uid FROM ({source}) s WHERE true \
         ORDER BY organization_uid, kind, trigram, version_uid ON CONFLICT DO NOTHING"
    )
}

fn trigrams_remove(v: &str) -> String {
    format!("DELETE FROM {TRIGRAMS} WHERE version_uid IN (SELECT uid FROM {v} v)")
}

/// Past this many versions carrying a trigram, a search does not count further to choose the
/// rarest of its trigrams (a bound on what the choice costs).
const TRIGRAM_COUNT_CAP: i64 = 500;

/// A search of version strings through [`TRIGRAMS`], in three parts of one statement.
pub struct TrigramSearch {
    /// The body of a CTE named `rarest`, which the other two read: the needle's rarest trigram
    /// and how many versions carry it, counted up to [`TRIGRAM_COUNT_CAP`].
    pub rarest: String,
    /// The versions that may contain the needle, a superset of those that do, for
    /// `v.uid IN (...)`: those carrying the rarest trigram, and those too long to have been cut.
    pub candidates: String,
    /// Whether the candidates are few enough to be worth reading (the rarest trigram is carried
    /// by fewer than [`TRIGRAM_COUNT_CAP`] versions); else the search reads every version as
    /// before (a needle of common trigrams only, `2024` among dated versions, would read every
    /// version through the trigrams, 7 to 15 times slower, found by review).
    pub indexed: String,
}

/// The trigram search for `needle` in the organization and kind `org` and `kind`
/// (placeholders); `None` for a needle shorter than a trigram.
///
/// A search that matches a hundred versions reads about a hundred, and one with a trigram no
/// version has reads none. Intersecting every trigram instead read every version carrying a
/// common one (`v00` of `v0042`): more than the plain count it replaced. The needle's trigrams
/// are cut here and lower-cased by the engine, as the stored ones are.
pub fn trigram_search(
    args: &mut super::query::Args,
    org: &str,
    kind: &str,
    needle: &str,
) -> Option<TrigramSearch> {
    let chars: Vec<char> = needle.chars().collect();
    let mut trigrams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    trigrams.sort();
    trigrams.dedup();
    if trigrams.is_empty() {
        return None;
    }
    let each: Vec<String> = trigrams
        .iter()
        .take(16)
        .map(|t| format!("SELECT lower({}) AS g", args.push(t.as_str())))
        .collect();
    let carrying = |t: &str| {
        format!(
            "SELECT t.version_uid FROM {TRIGRAMS} t WHERE t.organization_uid = {org} AND t.kind = {kind} AND t.trigram = {t}"
        )
    };
    Some(TrigramSearch {
        rarest: format!(
            "SELECT x.g, (SELECT COUNT(*) FROM (SELECT 1 FROM {TRIGRAMS} u WHERE u.organization_uid = {org} \
               AND u.kind = {kind} AND u.trigram = x.g LIMIT {TRIGRAM_COUNT_CAP}) y) AS k \
             FROM ({each}) x ORDER BY k, x.g LIMIT 1",
            each = each.join(" UNION ALL "),
        ),
        candidates: format!(
            "{} UNION {}",
            carrying("(SELECT g FROM rarest)"),
            carrying("''")
        ),
        indexed: format!("(SELECT k FROM rarest) < {TRIGRAM_COUNT_CAP}"),
    })
}

/// The counted rows of versions `v` (a relation with `uid` and `repository_uid`).
fn versions_of(v: &str) -> String {
    format!("SELECT v.repository_uid FROM {v} v")
}

/// The counted labels of versions `v`.
fn labels_of_versions(v: &str) -> String {
    format!(
        "SELECT v.repository_uid, l.label_key, l.label_value FROM {v} v JOIN labels l ON l.resource_uid = v.uid"
    )
}

/// The counted labels `l` (a relation with the columns of `labels`): those on a version.
fn labels(l: &str) -> String {
    format!(
        "SELECT v.repository_uid, l.label_key, l.label_value FROM {l} l JOIN versions v ON v.uid = l.resource_uid"
    )
}

/// A row trigger's `NEW` or `OLD` version, or label, as a relation.
fn row_version(rec: &str) -> String {
    format!("(SELECT {rec}.uid AS uid, {rec}.repository_uid AS repository_uid)")
}
/// A row trigger's `NEW` or `OLD` version with what the indexes read of it.
fn row_version_full(rec: &str) -> String {
    format!(
        "(SELECT {rec}.uid AS uid, {rec}.repository_uid AS repository_uid, {rec}.build_at AS build_at, \
         {rec}.created_at AS created_at, {rec}.version AS version)"
    )
}
fn row_label(rec: &str) -> String {
    format!(
        "(SELECT {rec}.resource_uid AS resource_uid, {rec}.label_key AS label_key, {rec}.label_value AS label_value)"
    )
}

/// What each event does to the counts, in order, given the relations of the rows it wrote
/// (`new`) and removed (`old`).
fn version_inserted(new: &str) -> Vec<String> {
    vec![
        BY_REPOSITORY.add(&versions_of(new)),
        BY_LABEL.add(&labels_of_versions(new)),
    ]
}
fn version_deleted(backend: DbBackend, old: &str) -> Vec<String> {
    vec![
        BY_REPOSITORY.subtract(backend, &versions_of(old)),
        BY_LABEL.subtract(backend, &labels_of_versions(old)),
    ]
}
fn label_inserted(new: &str) -> Vec<String> {
    vec![BY_LABEL.add(&labels(new))]
}
fn label_deleted(backend: DbBackend, old: &str) -> Vec<String> {
    vec![BY_LABEL.subtract(backend, &labels(old))]
}

/// What each event does to the indexes ([`LABELLED`], [`TRIGRAMS`]). They are kept by triggers
/// of their own (`_yatai_indexes_*`), beside the counts' ones: a server of the release before
/// them, started on the same database, puts back the counts' triggers as it knows them and
/// leaves these alone. On PostgreSQL they run after the counts' triggers of the same event
/// (triggers run in the order of their names), so after the rows of version counts that order
/// writers are taken.
fn indexed_version_inserted(new: &str) -> Vec<String> {
    vec![
        labelled_add(&labelled_of_versions(new)),
        trigrams_add(&trigrams_of_versions(new)),
    ]
}
fn indexed_version_deleted(old: &str) -> Vec<String> {
    vec![
        format!("DELETE FROM {LABELLED} WHERE version_uid IN (SELECT uid FROM {old} v)"),
        trigrams_remove(old),
    ]
}
/// A version's string changed (the server never changes one; an operator or an import may).
fn indexed_version_renamed(old: &str, new: &str) -> Vec<String> {
    vec![
        trigrams_remove(old),
        trigrams_add(&trigrams_of_versions(new)),
    ]
}
fn indexed_label_inserted(new: &str) -> Vec<String> {
    vec![labelled_add(&labelled_of_labels(new))]
}
fn indexed_label_deleted(old: &str) -> Vec<String> {
    vec![format!(
        "DELETE FROM {LABELLED} WHERE (version_uid, label_key) IN (SELECT resource_uid, label_key FROM {old} l)"
    )]
}

/// PostgreSQL: a label's trigger first takes the rows of version counts of its versions'
/// repositories, in uid order, as a version's trigger does by counting. Without it, two
/// writers of labels on versions of one repository could each hold a label count the other
/// waits for (a deadlock, found by review), and a label written while its version is being
/// deleted could count a version that is gone: with it, that writer waits for the deletion to
/// commit, and its next statement no longer sees the version.
fn lock_repositories_of(labels_relations: &[&str]) -> String {
    let of: Vec<String> = labels_relations
        .iter()
        .map(|l| {
            format!("SELECT v.repository_uid FROM {l} l JOIN versions v ON v.uid = l.resource_uid")
        })
        .collect();
    format!(
        "PERFORM 1 FROM {VERSIONS} c WHERE c.repository_uid IN ({}) ORDER BY c.repository_uid FOR NO KEY UPDATE",
        of.join(" UNION ")
    )
}

/// A trigger: its name and what creates it.
struct Trigger {
    name: &'static str,
    create: String,
}

// A trigger whose text (SQLite) or function whose body (PostgreSQL) changed is made again by
// `install`, found by `installed` comparing them with these.
fn triggers(backend: DbBackend) -> Vec<Trigger> {
    match backend {
        // SQLite writes one transaction at a time, so a row trigger waits on nothing.
        DbBackend::Sqlite => {
            let body = |statements: Vec<String>| format!("BEGIN {}; END", statements.join("; "));
            let (new_v, old_v) = (row_version("NEW"), row_version("OLD"));
            let (new_l, old_l) = (row_label("NEW"), row_label("OLD"));
            let moved = [
                version_deleted(backend, &old_v),
                version_inserted(&new_v),
            ]
            .concat();
            let relabelled = [label_deleted(backend, &old_l), label_inserted(&new_l)].concat();
            let (new_f, old_f) = (row_version_full("NEW"), row_version_full("OLD"));
            let indexed_moved = [indexed_version_deleted(&old_f), indexed_version_inserted(&new_f)].concat();
            let indexed_relabelled =
                [indexed_label_deleted(&old_l), indexed_label_inserted(&new_l)].concat();
            let trigger = |name: &'static str, on: &str, statements: Vec<String>| Trigger {
                name,
                create: format!("CREATE TRIGGER {name} AFTER {on} {}", body(statements)),
            };
            vec![
                trigger("_yatai_counts_version_insert", "INSERT ON versions", version_inserted(&new_v)),
                trigger("_yatai_counts_version_delete", "DELETE ON versions", version_deleted(backend, &old_v)),
                trigger(
                    "_yatai_counts_version_move",
                    "UPDATE OF repository_uid ON versions WHEN OLD.repository_uid IS NOT NEW.repository_uid",
                    moved,
                ),
                trigger("_yatai_counts_label_insert", "INSERT ON labels", label_inserted(&new_l)),
                trigger("_yatai_counts_label_delete", "DELETE ON labels", label_deleted(backend, &old_l)),
                trigger("_yatai_counts_label_update", "UPDATE ON labels", relabelled),
                trigger("_yatai_indexes_version_insert", "INSERT ON versions", indexed_version_inserted(&new_f)),
                trigger("_yatai_indexes_version_delete", "DELETE ON versions", indexed_version_deleted(&old_f)),
                trigger(
                    "_yatai_indexes_version_move",
                    "UPDATE OF repository_uid ON versions WHEN OLD.repository_uid IS NOT NEW.repository_uid",
                    indexed_moved,
                ),
                trigger(
                    "_yatai_indexes_version_rename",
                    "UPDATE OF version ON versions WHEN OLD.version IS NOT NEW.version",
                    indexed_version_renamed(&old_f, &new_f),
                ),
                trigger("_yatai_indexes_label_insert", "INSERT ON labels", indexed_label_inserted(&new_l)),
                trigger("_yatai_indexes_label_delete", "DELETE ON labels", indexed_label_deleted(&old_l)),
                trigger("_yatai_indexes_label_update", "UPDATE ON labels", indexed_relabelled),
            ]
        }
        // PostgreSQL: statement triggers over transition tables, so that a restore, an import
        // or an organization's deletion counts once per statement, not once per row.
        DbBackend::Postgres => pg_functions()
            .into_iter()
            .map(|f| Trigger {
                name: f.name,
                create: format!(
                    "CREATE TRIGGER {name} AFTER {event} ON {table} {each} EXECUTE FUNCTION {name}()",
                    name = f.name,
                    event = f.event,
                    table = f.table,
                    each = f.each,
                ),
            })
            .collect(),
    }
}

/// A PostgreSQL trigger function, with the trigger of the same name that runs it.
struct PgFunction {
    name: &'static str,
    table: &'static str,
    event: &'static str,
    each: &'static str,
    body: String,
}

fn pg_functions() -> Vec<PgFunction> {
    let pg = DbBackend::Postgres;
    let body =
        |statements: Vec<String>| format!(" BEGIN {}; RETURN NULL; END ", statements.join("; "));
    vec![
        PgFunction {
            name: "_yatai_counts_version_insert",
            table: "versions",
            event: "INSERT",
            each: "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT",
            body: body(version_inserted("changed")),
        },
        PgFunction {
            name: "_yatai_counts_version_delete",
            table: "versions",
            event: "DELETE",
            each: "REFERENCING OLD TABLE AS changed FOR EACH STATEMENT",
            body: body(version_deleted(pg, "changed")),
        },
        // A row trigger: the server never moves a version (an operator may), and its condition
        // spares every other update a call.
        PgFunction {
            name: "_yatai_counts_version_move",
            table: "versions",
            event: "UPDATE OF repository_uid",
            each: "FOR EACH ROW WHEN (OLD.repository_uid IS DISTINCT FROM NEW.repository_uid)",
            body: body(
                [
                    version_deleted(pg, &row_version("OLD")),
                    version_inserted(&row_version("NEW")),
                ]
                .concat(),
            ),
        },
        PgFunction {
            name: "_yatai_counts_label_insert",
            table: "labels",
            event: "INSERT",
            each: "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT",
            body: body(
                [
                    vec![lock_repositories_of(&["changed"])],
                    label_inserted("changed"),
                ]
                .concat(),
            ),
        },
        PgFunction {
            name: "_yatai_counts_label_delete",
            table: "labels",
            event: "DELETE",
            each: "REFERENCING OLD TABLE AS changed FOR EACH STATEMENT",
            body: body(
                [
                    vec![lock_repositories_of(&["changed"])],
                    label_deleted(pg, "changed"),
                ]
                .concat(),
            ),
        },
        PgFunction {
            name: "_yatai_counts_label_update",
            table: "labels",
            event: "UPDATE",
            each: "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
            body: body(
                [
                    vec![lock_repositories_of(&["old_rows", "new_rows"])],
                    label_deleted(pg, "old_rows"),
                    label_inserted("new_rows"),
                ]
                .concat(),
            ),
        },
        PgFunction {
            name: "_yatai_indexes_version_insert",
            table: "versions",
            event: "INSERT",
            each: "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT",
            body: body(indexed_version_inserted("changed")),
        },
        PgFunction {
            name: "_yatai_indexes_version_delete",
            table: "versions",
            event: "DELETE",
            each: "REFERENCING OLD TABLE AS changed FOR EACH STATEMENT",
            body: body(indexed_version_deleted("changed")),
        },
        PgFunction {
            name: "_yatai_indexes_version_move",
            table: "versions",
            event: "UPDATE OF repository_uid",
            each: "FOR EACH ROW WHEN (OLD.repository_uid IS DISTINCT FROM NEW.repository_uid)",
            body: body(
                [
                    indexed_version_deleted(&row_version_full("OLD")),
                    indexed_version_inserted(&row_version_full("NEW")),
                ]
                .concat(),
            ),
        },
        PgFunction {
            name: "_yatai_indexes_version_rename",
            table: "versions",
            event: "UPDATE OF version",
            each: "FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)",
            body: body(indexed_version_renamed(
                &row_version_full("OLD"),
                &row_version_full("NEW"),
            )),
        },
        PgFunction {
            name: "_yatai_indexes_label_insert",
            table: "labels",
            event: "INSERT",
            each: "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT",
            body: body(indexed_label_inserted("changed")),
        },
        PgFunction {
            name: "_yatai_indexes_label_delete",
            table: "labels",
            event: "DELETE",
            each: "REFERENCING OLD TABLE AS changed FOR EACH STATEMENT",
            body: body(indexed_label_deleted("changed")),
        },
        PgFunction {
            name: "_yatai_indexes_label_update",
            table: "labels",
            event: "UPDATE",
            each: "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
            body: body(
                [
                    indexed_label_deleted("old_rows"),
                    indexed_label_inserted("new_rows"),
                ]
                .concat(),
            ),
        },
    ]
}

/// The statements that make every count again from the data, and move the registry's
/// generation: answers kept with counts that were wrong are not served again.
fn recount(backend: DbBackend) -> Vec<String> {
    let mut sql = Vec::from(BY_REPOSITORY.recount(&versions_of("versions")));
    sql.extend(BY_LABEL.recount(&labels_of_versions("versions")));
    sql.push(format!("DELETE FROM {LABELLED}"));
    sql.push(labelled_add(&labelled_of_versions("versions")));
    sql.push(format!("DELETE FROM {TRIGRAMS}"));
    sql.push(trigrams_add(&trigrams_of_versions("versions")));
    sql.push(super::generation::bump(backend));
    sql
}

/// Creates the tables and the triggers where missing, and makes the counts again when anything
/// was missing or `migrated`. Idempotent; run at every start, where it costs one query when
/// everything is in place.
pub async fn install(db: &Db, migrated: bool) -> Result<(), Error> {
    if !migrated && installed(db).await? {
        return Ok(());
    }
    match db.backend() {
        DbBackend::Sqlite => {
            // One write transaction: no writer can come between the triggers and the recount.
            // Every trigger is made again, so that one of an older text is replaced.
            let mut sql = kept_create();
            for t in triggers(DbBackend::Sqlite) {
                sql.push(format!("DROP TRIGGER IF EXISTS {}", t.name));
                sql.push(t.create);
            }
            sql.extend(recount(DbBackend::Sqlite));
            db.run_in_transaction(&sql).await?;
        }
        DbBackend::Postgres => install_postgres(db).await?,
    }
    Ok(())
}

/// Whether the tables, the index, the functions (PostgreSQL, with their current bodies) and the
/// triggers (SQLite, with their current text) are in place, in one query.
async fn installed(db: &Db) -> Result<bool, Error> {
    let backend = db.backend();
    let triggers = triggers(backend);
    let names: Vec<&str> = triggers.iter().map(|t| t.name).collect();
    let mut args = super::query::Args::default();
    let sql = match backend {
        // SQLite keeps a trigger's text as it was written (`CREATE TRIGGER name ...`).
        DbBackend::Sqlite => {
            let texts: Vec<String> = triggers
                .iter()
                .map(|t| {
                    format!(
                        "(name = {} AND sql = {})",
                        args.push(t.name),
                        args.push(t.create.as_str())
                    )
                })
                .collect();
            format!(
                "SELECT CASE WHEN (SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table', 'index') AND name IN ({tables})) = {kept} \
                   AND (SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND ({texts})) = {n} \
                 THEN 1 ELSE 0 END",
                tables = args.list(KEPT),
                kept = KEPT.len(),
                texts = texts.join(" OR "),
                n = names.len(),
            )
        }
        DbBackend::Postgres => {
            let bodies: Vec<String> = pg_functions()
                .iter()
                .map(|f| {
                    format!(
                        "(SELECT prosrc FROM pg_proc WHERE proname = {} \
                           AND pronamespace = current_schema()::regnamespace) = {}",
                        args.push(f.name),
                        args.push(f.body.as_str())
                    )
                })
                .collect();
            let tables: Vec<String> = KEPT
                .iter()
                .map(|t| format!("to_regclass({}) IS NOT NULL", args.push(*t)))
                .collect();
            format!(
                "SELECT CASE WHEN {tables} AND {bodies} \
                   AND (SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                        WHERE c.relnamespace = current_schema()::regnamespace \
                        AND t.tgname IN ({triggers})) = {n} THEN 1::bigint ELSE 0::bigint END",
                tables = tables.join(" AND "),
                bodies = bodies.join(" AND "),
                triggers = args.list(names.iter().copied()),
                n = names.len(),
            )
        }
    };
    if args.fetch_count(db.pool(), &sql).await? != 1 {
        return Ok(false);
    }
    // The numbers a trigger cuts strings with, all there (a table emptied would leave new
    // versions without trigrams, and their searches short): asked once the table is known.
    let positions = format!("SELECT COUNT(*) FROM {POSITIONS}");
    Ok(super::query::Args::default()
        .fetch_count(db.pool(), &positions)
        .await?
        == INDEXED_CHARS)
}

/// PostgreSQL: one transaction holding writers of versions and labels off (`SHARE ROW
/// EXCLUSIVE`, which readers pass), so that the recount and the triggers start from the same
/// rows; retried a few times, waiting at most a few seconds each, so that a server starting
/// beside busy replicas neither stalls them for long nor deadlocks with them.
async fn install_postgres(db: &Db) -> Result<(), Error> {
    super::generation::pg_installing(db, super::lock_keys::COUNTS_INSTALL, async |conn| {
        let present: Vec<(String, String)> = sqlx::query_as(
            "SELECT proname::text, prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let present_triggers = super::generation::pg_triggers(&mut *conn).await?;
        let mut sql = vec![
            "SET LOCAL lock_timeout = '5s'".to_string(),
            "LOCK TABLE versions, labels IN SHARE ROW EXCLUSIVE MODE".to_string(),
        ];
        sql.extend(kept_create());
        // Replaced only when they differ: a role that may not own functions starts as long as
        // they are already the right ones.
        for f in pg_functions() {
            if !present.iter().any(|(n, b)| n == f.name && *b == f.body) {
                sql.push(format!(
                    "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $${}$$",
                    f.name, f.body
                ));
            }
        }
        // Only the missing ones: dropping one would lock its table against readers too.
        for t in triggers(DbBackend::Postgres) {
            if !present_triggers.iter().any(|n| n == t.name) {
                sql.push(t.create);
            }
        }
        sql.extend(recount(DbBackend::Postgres));
        let script = format!("BEGIN; {}; COMMIT", sql.join("; "));
        let mut last = None;
        for _ in 0..5 {
            match sqlx::raw_sql(&script).execute(&mut *conn).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    last = Some(e);
                }
            }
        }
        Err(Error::Unavailable(format!(
            "cannot install the counts of versions and labels (busy?): {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    })
    .await
}

/// The SQL that joins the number of versions of each row of `rows` (a relation with a `uid` of
/// repositories, aliased `p`) as `c`, for a statement's FROM: `COALESCE(c.n, 0)` reads it.
///
/// A join, not a lookup per row: PostgreSQL scans this small table whole for each lookup (100
/// repositories: 2,000 rows read for a page of 20), where a join hashes it once (pgbench, a fresh
/// repository page at 10,000 bentos: 0.65 -> 0.54 ms). SQLite reads it by its key either way.
pub fn joined_versions(rows: &str) -> String {
    format!("FROM {rows} p LEFT JOIN {VERSIONS} c ON c.repository_uid = p.uid")
}

/// The SQL of the number of versions of the repositories `wheres` selects (as `r`), or with
/// `label` (placeholders of its key and value) of those carrying it, for a statement's select
/// list.
pub fn sum(wheres: &str, label: Option<(&str, &str)>) -> String {
    let (table, on) = match label {
        None => (VERSIONS, String::new()),
        Some((k, v)) => (
            LABELS,
            format!(" AND c.label_key = {k} AND c.label_value = {v}"),
        ),
    };
    // PostgreSQL sums BIGINT as NUMERIC.
    format!(
        "(SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) FROM repositories r \
         JOIN {table} c ON c.repository_uid = r.uid{on} WHERE {wheres})"
    )
}

/// The SQL of a row of two sums over the repositories `wheres` selects (as `r`): the number of
/// their versions (`every`), and of those of them `named` also selects (`named`). One read of
/// the counts where two [`sum`]s read them twice.
pub fn sums(wheres: &str, named: &str) -> String {
    format!(
        "SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) AS every, \
         CAST(COALESCE(SUM(CASE WHEN {named} THEN c.n ELSE 0 END), 0) AS BIGINT) AS named \
         FROM repositories r JOIN {VERSIONS} c ON c.repository_uid = r.uid WHERE {wheres}"
    )
}

/// The SQL of whether a version of the repository `repository` carries the label `(k, v)`
/// (placeholders), for a condition.
pub fn has_label(repository: &str, (k, v): (&str, &str)) -> String {
    format!(
        "EXISTS (SELECT 1 FROM {LABELS} c WHERE c.repository_uid = {repository} \
         AND c.label_key = {k} AND c.label_value = {v} AND c.n > 0)"
    )
}
