//! The one pager of every list page: links to the previous and the next page that keep the
//! list's filters, and "26–50 of 73".

/// How many rows a list page shows.
pub const PAGE_SIZE: i64 = 25;

/// The pager under a list (`templates/pager.html`).
#[derive(Debug, Clone)]
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
    /// `26–50 of 73`, empty for an empty list.
    pub range_text: String,
    pub prev_label: &'static str,
    pub next_label: &'static str,
}

impl Default for Pager {
    fn default() -> Self {
        Pager {
            prev: None,
            next: None,
            range_text: String::new(),
            prev_label: "← Previous",
            next_label: "Next →",
        }
    }
}

impl Pager {
    /// The pager of a list at `base` filtered by `filters`, showing `shown` of `total` rows from
    /// `start` on.
    pub fn new(
        base: &str,
        filters: &[(&str, &str)],
        start: i64,
        shown: usize,
        total: i64,
    ) -> Pager {
        let start = start.max(0);
        let shown = shown as i64;
        let link = |start: i64| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.extend_pairs(filters);
            query.append_pair("start", &start.to_string());
            format!("{base}?{}", query.finish())
        };
        Pager {
            prev: (start > 0).then(|| link((start - PAGE_SIZE).max(0))),
            next: (start + shown < total).then(|| link(start + PAGE_SIZE)),
            range_text: if total == 0 {
                String::new()
            } else {
                format!("{}–{} of {total}", start + 1, start + shown)
            },
            ..Pager::default()
        }
    }

    /// The same pager for a list of newest first entries (events): "← Newer", "Older →".
    pub fn newest_first(self) -> Pager {
        Pager {
            prev_label: "← Newer",
            next_label: "Older →",
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters() {
        let p = Pager::new(
            "/bentos",
            &[("search", "iris v2"), ("sort", "")],
            25,
            25,
            73,
        );
        assert_eq!(
            p.prev.as_deref(),
            Some("/bentos?search=iris+v2&sort=&start=0")
        );
        assert_eq!(
            p.next.as_deref(),
            Some("/bentos?search=iris+v2&sort=&start=50")
        );
        assert_eq!(p.range_text, "26–50 of 73");
        let last = Pager::new("/events", &[], 50, 23, 73).newest_first();
        assert_eq!(last.next, None);
        assert_eq!(last.prev_label, "← Newer");
        let empty = Pager::new("/models", &[], 0, 0, 0);
        assert!(empty.prev.is_none() && empty.next.is_none() && empty.range_text.is_empty());
    }
}
