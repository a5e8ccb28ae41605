//! Yatai's list query: paging, a search text, and the `q` mini-language (`label:KEY=VALUE`,
//! `sort:FIELD-asc|desc`, `status:STATUS`, other words search), one parser for the API and the
//! dashboard.

use yatai_domain::paging::Page;
use yatai_domain::registry::UploadStatus;
use yatai_domain::Error;
use yatai_store::db::repositories::RepositoryOrder;
use yatai_store::db::versions::{VersionFilter, VersionOrder};

/// A parsed and checked list query.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ListSpec {
    pub start: i64,
    pub count: i64,
    pub search: String,
    pub labels: Vec<(String, String)>,
    pub sort: Option<(String, bool)>,
    pub status: Option<UploadStatus>,
}

impl ListSpec {
    /// Parses the parts of a list query as a client sent them.
    pub fn parse(
        start: Option<i64>,
        count: Option<i64>,
        search: Option<&str>,
        q: Option<&str>,
    ) -> Result<ListSpec, Error> {
        let Page { start, count } = Page::new(start, count, 20)?;
        let mut spec = ListSpec {
            start,
            count,
            ..Default::default()
        };
        let mut words: Vec<String> = search
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        for token in q.unwrap_or("").split_whitespace() {
            if let Some(label) = token.strip_prefix("label:") {
                let (k, v) = label.split_once('=').ok_or_else(|| {
                    Error::field(
                        "q",
                        format!("label filter {token:?} must look like label:KEY=VALUE"),
                    )
                })?;
                spec.labels.push((k.to_string(), v.to_string()));
            } else if let Some(sort) = token.strip_prefix("sort:") {
                let (field, desc) = match sort.rsplit_once('-') {
                    Some((f, "desc")) => (f, true),
                    Some((f, "asc")) => (f, false),
                    _ => (sort, false),
                };
                spec.sort = Some((field.to_string(), desc));
            } else if let Some(status) = token.strip_prefix("status:") {
                spec.status = Some(UploadStatus::parse(status).map_err(|e| Error::field("q", e))?);
            } else {
                words.push(token.to_string());
            }
        }
        spec.search = words.join(" ");
        Ok(spec)
    }
}

impl ListSpec {
    /// The page asked for.
    pub fn page(&self) -> yatai_domain::paging::Page {
        yatai_domain::paging::Page {
            start: self.start,
            count: self.count,
        }
    }

    /// The store filter of a version list, within one repository when `repository_uid` is given.
    pub fn version_filter(&self, repository_uid: Option<String>) -> Result<VersionFilter, Error> {
        Ok(VersionFilter {
            repository_uid,
            search: self.search.clone(),
            labels: self.labels.clone(),
            upload_status: self.status,
            order: self.version_order()?,
        })
    }

    /// The version order asked for (default newest first).
    pub fn version_order(&self) -> Result<VersionOrder, Error> {
        match self.sort.as_ref().map(|(f, d)| (f.as_str(), *d)) {
            None | Some(("created_at" | "build_at" | "updated_at", true)) => {
                Ok(VersionOrder::NewestFirst)
            }
            Some(("created_at" | "build_at" | "updated_at", false)) => {
                Ok(VersionOrder::OldestFirst)
            }
            Some(("name", _)) => Ok(VersionOrder::Name),
            Some((other, _)) => Err(Error::invalid(format!(
                "cannot sort by {other:?}; use created_at, build_at or name"
            ))),
        }
    }

    /// The repository order asked for (default newest first).
    pub fn repository_order(&self) -> Result<RepositoryOrder, Error> {
        match self.sort.as_ref().map(|(f, d)| (f.as_str(), *d)) {
            None | Some(("created_at" | "updated_at", true)) => Ok(RepositoryOrder::NewestFirst),
            Some(("created_at" | "updated_at", false)) => Ok(RepositoryOrder::OldestFirst),
            Some(("name", _)) => Ok(RepositoryOrder::Name),
            Some((other, _)) => Err(Error::invalid(format!(
                "cannot sort by {other:?}; use created_at or name"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        start: Option<i64>,
        count: Option<i64>,
        search: Option<&str>,
        q: Option<&str>,
    ) -> Result<ListSpec, Error> {
        ListSpec::parse(start, count, search, q)
    }

    #[test]
    fn list_queries_parse_yatai_q() {
        let spec = parse(
            Some(5),
            Some(10),
            Some("iris"),
            Some("label:team=ml sort:name-asc status:success v2"),
        )
        .unwrap();
        assert_eq!(spec.start, 5);
        assert_eq!(spec.search, "iris v2");
        assert_eq!(spec.labels, vec![("team".to_string(), "ml".to_string())]);
        assert_eq!(spec.sort, Some(("name".to_string(), false)));
        assert_eq!(spec.status, Some(UploadStatus::Success));
        assert_eq!(spec.version_order().unwrap(), VersionOrder::Name);
        assert!(parse(None, Some(5000), None, None).is_err());
        let e = parse(None, None, None, Some("label:novalue")).unwrap_err();
        assert_eq!(e.field_name(), Some("q"));
        assert!(parse(None, None, None, Some("sort:size"))
            .unwrap()
            .version_order()
            .is_err());
    }
}
