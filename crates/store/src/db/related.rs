//! What an answer shows beside each version: its repository, its labels, its image build and the
//! users who created the version and the repository.
//!
//! A page reads them in the statement that reads its rows, as JSON aggregates
//! ([`Related::columns`]): one trip to the database (on SQLite one row back; PostgreSQL sends a
//! page's versions as rows after them, with their repositories as columns of those rows, see
//! `versions::rows_after_head`). Read as a query per
//! relation, a fresh page of 20 bentos cost seven trips and about 80 rows, and sqlx's SQLite
//! driver hands each row from its connection thread to the runtime on its own; those hand-offs,
//! not SQLite, were most of the page's time (`perf`, bench/RESULTS.md).

use std::collections::HashMap;

use yatai_domain::Error;

use super::image_builds::{self, ImageBuild};
use super::query::{from_json, prefixed, Args, JsonSql};
use super::repositories::{self, Repository};
use super::users::{self, User};
use super::versions::Version;
use super::Db;

/// The rows shown beside a batch of versions.
#[derive(Debug, Clone, Default)]
pub struct Related {
    repositories: HashMap<String, Repository>,
    labels: HashMap<String, Vec<(String, String)>>,
    builds: HashMap<String, ImageBuild>,
    users: HashMap<String, User>,
}

/// The JSON text columns [`Related::columns`] selects, in order.
pub type RelatedColumns = (String, String, String, String);

impl Related {
    /// A repository of the batch, by uid.
    pub fn repository(&self, uid: &str) -> Option<&Repository> {
        self.repositories.get(uid)
    }

    /// The labels of a version, by key.
    pub fn labels(&self, version_uid: &str) -> &[(String, String)] {
        self.labels.get(version_uid).map_or(&[], Vec::as_slice)
    }

    /// The image build of a version, if one was recorded.
    pub fn build(&self, version_uid: &str) -> Option<&ImageBuild> {
        self.builds.get(version_uid)
    }

    /// A creator of a version or repository of the batch, by uid.
    pub fn user(&self, uid: &str) -> Option<&User> {
        self.users.get(uid)
    }

    /// Reads them for versions read some other way, in one statement. With `with_repositories`,
    /// the versions' repositories and their creators too; without, none.
    pub async fn of_versions(
        db: &Db,
        versions: &[Version],
        with_repositories: bool,
    ) -> Result<Self, Error> {
        if versions.is_empty() {
            return Ok(Related::default());
        }
        let mut args = Args::default();
        let uids = args.list(versions.iter().map(|v| v.uid.as_str()));
        let json = JsonSql(db.backend());
        let sql = format!(
            "WITH batch AS (SELECT uid, repository_uid, creator_uid FROM versions WHERE uid IN ({uids})), \
             batch_repositories AS (SELECT {columns} FROM repositories r WHERE r.uid IN (SELECT repository_uid FROM batch) AND {with}) \
             SELECT {related}",
            columns = prefixed("r", repositories::COLUMNS),
            with = if with_repositories { "1 = 1" } else { "1 = 0" },
            related = Self::columns(json, "batch", "batch_repositories"),
        );
        Self::from_columns(json, &args.fetch_one(db, &sql).await?)
    }

    /// Names for the four columns of [`Self::columns`], where a statement names them.
    pub(crate) const NAMES: [&'static str; 4] = [
        "related_repositories",
        "related_labels",
        "related_builds",
        "related_users",
    ];

    /// The four columns of a statement that read them beside its rows: `versions` and
    /// `repositories` name relations of that statement (common table expressions) with the
    /// columns of `versions` and exactly those of `repositories` (its rows are encoded whole on
    /// PostgreSQL: see [`JsonSql::row`]). Read back with [`Self::from_columns`].
    pub(crate) fn columns(json: JsonSql, versions: &str, repositories: &str) -> String {
        Self::columns_of(json, versions, repositories, true)
    }

    /// [`Self::columns`] beside rows that are the repositories themselves (a page of
    /// repositories): their creators are read, not the repositories again; the caller adds them
    /// with [`Self::with_repositories`] from the rows it read. Encoded and decoded a second time,
    /// they were 8 % of a fresh repository page in PostgreSQL (pgbench, 10,000 bentos).
    pub(crate) fn columns_beside_repositories(
        json: JsonSql,
        versions: &str,
        repositories: &str,
    ) -> String {
        Self::columns_of(json, versions, repositories, false)
    }

    fn columns_of(
        json: JsonSql,
        versions: &str,
        repositories: &str,
        repository_rows: bool,
    ) -> String {
        let repository_rows = if repository_rows {
            json.rows_unordered(
                &json.row("r", repositories::COLUMNS),
                &format!("FROM {repositories} r"),
            )
        } else {
            "'[]'".to_string()
        };
        // Each version's labels in key order (the engine's collation, as a label list sorts;
        // sorted by `from_columns` on SQLite).
        let label_rows = json.rows_sorted_by_reader(
            &json.array("l.resource_uid, l.label_key, l.label_value"),
            &format!("FROM labels l WHERE l.resource_uid IN (SELECT uid FROM {versions})"),
            "l.resource_uid, l.label_key",
        );
        let build_rows = json.rows_unordered(
            &json.object("b", image_builds::COLUMNS),
            &format!("FROM image_builds b WHERE b.version_uid IN (SELECT uid FROM {versions})"),
        );
        // What an answer shows of a creator: no password hash.
        let user_rows = json.rows_unordered(
            &json.object("u", users::SHOWN_COLUMNS),
            &format!(
                "FROM users u WHERE u.uid IN (SELECT creator_uid FROM {versions} UNION SELECT creator_uid FROM {repositories})"
            ),
        );
        format!("{repository_rows}, {label_rows}, {build_rows}, {user_rows}")
    }

    /// Reads the columns of [`Self::columns`], as `json` wrote them.
    pub(crate) fn from_columns(
        json: JsonSql,
        (repositories, labels, builds, users): &RelatedColumns,
    ) -> Result<Self, Error> {
        let repositories: Vec<Repository> = from_json("repositories", repositories)?;
        let label_rows: Vec<(String, String, String)> = from_json("labels", labels)?;
        let builds: Vec<ImageBuild> = from_json("image builds", builds)?;
        let users: Vec<User> = from_json("users", users)?;
        let mut label_map: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (uid, key, value) in label_rows {
            label_map.entry(uid).or_default().push((key, value));
        }
        if json.reader_sorts() {
            for labels in label_map.values_mut() {
                labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            }
        }
        Ok(Related {
            repositories: repositories
                .into_iter()
                .map(|r| (r.uid.clone(), r))
                .collect(),
            labels: label_map,
            builds: builds
                .into_iter()
                .map(|b| (b.version_uid.clone(), b))
                .collect(),
            users: users.into_iter().map(|u| (u.uid.clone(), u)).collect(),
        })
    }

    /// Adds repositories read beside the batch (see [`Self::columns_beside_repositories`]); one read
    /// twice is kept once.
    pub(crate) fn with_repositories(
        mut self,
        repositories: impl IntoIterator<Item = Repository>,
    ) -> Self {
        self.repositories
            .extend(repositories.into_iter().map(|r| (r.uid.clone(), r)));
        self
    }
}
