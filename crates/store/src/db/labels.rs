//! Key/value labels on bentos and models.

use std::collections::HashMap;

use sqlx::{Any, Executor};
use yatai_domain::Error;

use super::db_error;

/// Replaces the labels of a resource.
pub async fn replace(
    tx: &mut sqlx::AnyConnection,
    organization_uid: &str,
    resource_uid: &str,
    labels: &[(String, String)],
) -> Result<(), Error> {
    sqlx::query("DELETE FROM labels WHERE resource_uid = $1")
        .bind(resource_uid)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    for (k, v) in labels {
        // An upsert, so that two clients setting labels at once cannot collide.
        sqlx::query(
            "INSERT INTO labels (resource_uid, organization_uid, label_key, label_value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (resource_uid, label_key) DO UPDATE SET label_value = excluded.label_value",
        )
            .bind(resource_uid)
            .bind(organization_uid)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The labels of each of the given resources, in key order.
pub async fn of<'c>(
    ex: impl Executor<'c, Database = Any>,
    resource_uids: &[String],
) -> Result<HashMap<String, Vec<(String, String)>>, Error> {
    let mut map: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if resource_uids.is_empty() {
        return Ok(map);
    }
    let placeholders: Vec<String> = (1..=resource_uids.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT resource_uid, label_key, label_value FROM labels WHERE resource_uid IN ({}) ORDER BY label_key", placeholders.join(", "));
    let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
    for uid in resource_uids {
        q = q.bind(uid);
    }
    for (uid, k, v) in q.fetch_all(ex).await.map_err(db_error)? {
        map.entry(uid).or_default().push((k, v));
    }
    Ok(map)
}
