//! Queries assembled from optional filters: numbered placeholders with their values, IN lists,
//! and the one way a page of rows and its total are read.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow};
use yatai_domain::paging::Page;
use yatai_domain::Error;

use super::db_error;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg::Text(s.clone())
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Whether any of `columns` matches the LIKE pattern `p` (a placeholder from
/// [`Args::like_pattern`]).
///
/// The pattern is an expression (`p || ''`), not the bare placeholder: SQLite marks a statement
/// with `column LIKE ?` to be prepared again whenever that value is bound (its plan could use an
/// index for the pattern's prefix, which a `%...` pattern never has), so every run of a kept
/// statement with a search prepared it anew: 56 % of a fresh search's instructions, measured with
/// callgrind at 10,000 bentos.
pub fn like_any(columns: &[&str], p: &str) -> String {
    let each: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} LIKE ({p} || '') ESCAPE '\\'"))
        .collect();
    format!("({})", each.join(" OR "))
}

/// The values of a query's placeholders, in order: `push` returns the placeholder to write.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<Arg>);

impl Args {
    /// Adds a value; returns its placeholder (`$N`).
    pub fn push(&mut self, value: impl Into<Arg>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }

    /// Adds values for an `IN (...)` list; returns the placeholders, comma-separated (`NULL` for
    /// an empty list, which matches nothing).
    pub fn list<V: Into<Arg>>(&mut self, values: impl IntoIterator<Item = V>) -> String {
        let placeholders: Vec<String> = values.into_iter().map(|v| self.push(v)).collect();
        if placeholders.is_empty() {
            "NULL".to_string()
        } else {
            placeholders.join(", ")
        }
    }

    /// A search: `needle` anywhere in any of `columns` (its `%`, `_` and `\` taken literally);
    /// returns the condition, its one value pushed.
    pub fn contains(&mut self, columns: &[&str], needle: &str) -> String {
        let p = self.like_pattern(needle);
        like_any(columns, &p)
    }

    /// Adds the LIKE pattern of `needle` anywhere (its `%`, `_` and `\` taken literally), for
    /// [`like_any`]; returns its placeholder.
    pub fn like_pattern(&mut self, needle: &str) -> String {
        self.push(format!("%{}%", escape_like(needle)))
    }

    fn bind_to<'q, O>(
        &self,
        q: sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
        self.bind_all(q.persistent(false))
    }

    fn bind_all<'q, O>(
        &self,
        mut q: sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
        for a in &self.0 {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(n) => q.bind(*n),
            };
        }
        q
    }

    /// Runs `sql` with these values and reads every row.
    pub async fn fetch_all<'c, E, T>(&self, ex: E, sql: &str) -> Result<Vec<T>, Error>
    where
        E: Executor<'c, Database = Any>,
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        self.bind_to(sqlx::query_as(sql))
            .fetch_all(ex)
            .await
            .map_err(db_error)
    }

    /// Runs `sql` with these values on `db` and reads its one row; the statement stays
    /// prepared (sqlx keeps up to 100 per connection, the least recently used dropped first).
    ///
    /// Preparing anew each time cost a fresh list about a fifth of its time on SQLite, and on
    /// PostgreSQL a fresh list about a third and a fresh get about 40 %. SQLite plans without
    /// statistics, so one plan holds for any values there. PostgreSQL chooses between a plan
    /// kept for any values and one made for each run's values (`plan_cache_mode = auto`); a
    /// page's LIMIT decides much of that choice (see [`limit_offset`]).
    pub async fn fetch_one<T>(&self, db: &super::Db, sql: &str) -> Result<T, Error>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        self.bind_all(sqlx::query_as(sql))
            .fetch_one(db.pool())
            .await
            .map_err(db_error)
    }

    /// [`Self::fetch_one`] for a statement of many rows: every row, the statement kept prepared.
    pub async fn fetch_all_kept<T>(&self, db: &super::Db, sql: &str) -> Result<Vec<T>, Error>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        self.bind_all(sqlx::query_as(sql))
            .fetch_all(db.pool())
            .await
            .map_err(db_error)
    }

    /// Runs `sql` with these values and reads one number.
    pub async fn fetch_count<'c, E>(&self, ex: E, sql: &str) -> Result<i64, Error>
    where
        E: Executor<'c, Database = Any>,
    {
        let (n,): (i64,) = self
            .bind_to(sqlx::query_as(sql))
            .fetch_one(ex)
            .await
            .map_err(db_error)?;
        Ok(n)
    }
}

/// The LIMIT and OFFSET of a page (never negative), written into a statement as numbers where a
/// kept plan is right for any values, else bound.
///
/// Why: a plan PostgreSQL keeps for any values cannot know a bound LIMIT, and costs it as a tenth
/// of the rows; so for the list of versions it made a plan for each run (custom plans, about half
/// of a fresh list: 1.7 to 2.5 ms against 1.0 to 1.3 ms with the LIMIT written, `pgbench` at
/// 10,000 bentos), and a kept plan for a bound LIMIT read all 20,000 labels to join them to a page
/// of 20. Written, the page is costed for its size, and PostgreSQL keeps one plan when it costs
/// what a custom one does. Where the values matter (a label checked row by row, a search that
/// matches little) a kept plan is wrong: forcing one made a page of a label carried by one
/// version in 200,000 walk every version (657 ms against 0.17 ms). Each page size and start is
/// its own prepared statement (sqlx keeps the 100 most recently used per connection), which is
/// cheap for the few pages clients ask for.
///
/// Of the prepared pages, an unfiltered list of versions, one of a label read from its index and,
/// on PostgreSQL, a search through the trigrams write it ([`page`] writes it too, and its
/// statements are not kept). Other filtered lists bind it, so that they are planned for their
/// values; the repository list with a label kept a plan with its LIMIT bound (1.1 ms) and was
/// planned on each run with it written (2.5 ms), so it binds it too.
pub fn limit_offset(page: Page) -> (i64, i64) {
    (page.count.max(0), page.start.max(0))
}

/// Reads one page of `SELECT {select} {from_where} ORDER BY {order_by}` and the total number of
/// rows `from_where` selects.
pub async fn page<'c, E, T>(
    ex: E,
    select: &str,
    from_where: &str,
    order_by: &str,
    args: &Args,
    page: Page,
) -> Result<(Vec<T>, i64), Error>
where
    E: Executor<'c, Database = Any> + Copy,
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let total = args
        .fetch_count(ex, &format!("SELECT COUNT(*) {from_where}"))
        .await?;
    if page.count == 0 || page.start >= total {
        return Ok((Vec::new(), total));
    }
    let (limit, offset) = limit_offset(page);
    let rows = args
        .fetch_all(
            ex,
            &format!(
                "SELECT {select} {from_where} ORDER BY {order_by} LIMIT {limit} OFFSET {offset}",
            ),
        )
        .await?;
    Ok((rows, total))
}

/// The columns of `columns` (comma-separated) prefixed with a table alias.
pub fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of `columns` (comma-separated) under the table alias `alias`, each renamed
/// `{prefix}{column}`: a query joining two tables whose columns share names reads each side
/// under its own prefix.
pub fn renamed(alias: &str, columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{c} AS {prefix}{c}", c = c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// JSON built by the database, in its own dialect: a page reads its rows and the rows shown
/// beside them in one statement as JSON aggregates (see [`super::related`]).
#[derive(Debug, Clone, Copy)]
pub struct JsonSql(pub super::DbBackend);

impl JsonSql {
    /// A JSON object of `columns` (comma-separated) of the table alias `alias`, keyed by column.
    pub fn object(self, alias: &str, columns: &str) -> String {
        let pairs: Vec<String> = columns
            .split(',')
            .map(|c| format!("'{c}', {alias}.{c}", c = c.trim()))
            .collect();
        match self.0 {
            super::DbBackend::Sqlite => format!("json_object({})", pairs.join(", ")),
            super::DbBackend::Postgres => format!("json_build_object({})", pairs.join(", ")),
        }
    }

    /// [`Self::object`] of a row of a relation the statement itself defines with `columns` and
    /// at most other columns its reader ignores: PostgreSQL encodes the row whole, without
    /// looking up the type of each argument of `json_build_object` again for every row (pgbench,
    /// a page of 20 versions at 10,000 bentos, when those were JSON: 0.60 -> 0.54 ms). Never for a
    /// table: every column of the row would be read (a user's password hash, say), and on
    /// PostgreSQL only, where the SQLite tests would not see it.
    pub fn row(self, alias: &str, columns: &str) -> String {
        match self.0 {
            super::DbBackend::Sqlite => self.object(alias, columns),
            super::DbBackend::Postgres => alias.to_string(),
        }
    }

    /// A JSON array of the expressions `items` (comma-separated).
    pub fn array(self, items: &str) -> String {
        match self.0 {
            super::DbBackend::Sqlite => format!("json_array({items})"),
            super::DbBackend::Postgres => format!("json_build_array({items})"),
        }
    }

    /// `(SELECT <JSON array of each row's value_expr, in order_by> {from_where})`, as text (`[]`
    /// for no row). The order is the engine's (its collation), the one its pages are cut in.
    pub fn rows(self, value_expr: &str, from_where: &str, order_by: &str) -> String {
        match self.0 {
            // An aggregate's ORDER BY: SQLite 3.44 and later (sqlx bundles 3.46).
            super::DbBackend::Sqlite => format!(
                "(SELECT json_group_array({value_expr} ORDER BY {order_by}) {from_where})"
            ),
            // json_agg gives NULL for no row, and a `json` column, which sqlx's `Any` reads as text only.
            super::DbBackend::Postgres => format!(
                "(SELECT COALESCE(json_agg({value_expr} ORDER BY {order_by}), '[]'::json)::text {from_where})"
            ),
        }
    }

    /// [`Self::rows`] in no order, for rows read into a map. An aggregate's ORDER BY costs SQLite
    /// a temporary b-tree of its own, and PostgreSQL a sort.
    pub fn rows_unordered(self, value_expr: &str, from_where: &str) -> String {
        match self.0 {
            super::DbBackend::Sqlite => {
                format!("(SELECT json_group_array({value_expr}) {from_where})")
            }
            super::DbBackend::Postgres => {
                format!("(SELECT COALESCE(json_agg({value_expr}), '[]'::json)::text {from_where})")
            }
        }
    }

    /// [`Self::rows`] for a reader that puts them in order itself on SQLite
    /// ([`Self::reader_sorts`]): there, in no order; on PostgreSQL, in `order_by`, as its
    /// collation need not be byte order. SQLite's (binary) is, so the reader sorts `str`s as
    /// SQLite would. Why: the temporary b-trees of SQLite's aggregate ORDER BYs (one per
    /// aggregate, each built of the rows whole) were a sixth of the instructions of a fresh page of
    /// 20 bentos (callgrind, 10,000 bentos: 1.96 -> 1.65 M per statement without them).
    pub fn rows_sorted_by_reader(
        self,
        value_expr: &str,
        from_where: &str,
        order_by: &str,
    ) -> String {
        match self.0 {
            super::DbBackend::Sqlite => self.rows_unordered(value_expr, from_where),
            super::DbBackend::Postgres => self.rows(value_expr, from_where, order_by),
        }
    }

    /// Whether the reader of [`Self::rows_sorted_by_reader`] sorts them (SQLite).
    pub fn reader_sorts(self) -> bool {
        self.0 == super::DbBackend::Sqlite
    }
}

/// Reads `T` from a JSON text column of [`JsonSql::rows`].
pub fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| {
        Error::Internal(format!(
            "could not read the {what} the database aggregated: {e}"
        ))
    })
}

/// Deserializes a value stored as text with its `TryFrom<String>` (the enums of the domain).
pub fn from_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    let s = <String as serde::Deserialize>::deserialize(d)?;
    T::try_from(s).map_err(serde::de::Error::custom)
}

/// Deserializes a flag stored as a 0/1 integer.
pub fn from_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(<i64 as serde::Deserialize>::deserialize(d)? != 0)
}
