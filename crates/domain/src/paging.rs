//! Pages of lists: one rule for every list the API offers.

use crate::{Error, Result};

/// The most items one page holds.
pub const MAX_PAGE: i64 = 1000;

/// A checked page request: items `start..start + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub start: i64,
    pub count: i64,
}

impl Page {
    /// Checks `start` and `count` as a client sent them (`count` defaults to `default`).
    pub fn new(start: Option<i64>, count: Option<i64>, default: i64) -> Result<Page> {
        let start = start.unwrap_or(0);
        let count = count.unwrap_or(default);
        if start < 0 || !(0..=MAX_PAGE).contains(&count) {
            return Err(Error::invalid(format!(
                "start must be >= 0 and count between 0 and {MAX_PAGE}"
            )));
        }
        Ok(Page { start, count })
    }

    /// Every item, as far as one page goes.
    pub fn all() -> Page {
        Page {
            start: 0,
            count: MAX_PAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        assert_eq!(
            Page::new(None, None, 20).unwrap(),
            Page {
                start: 0,
                count: 20
            }
        );
        assert_eq!(Page::new(Some(5), Some(1000), 20).unwrap().count, 1000);
        assert!(Page::new(Some(-1), None, 20).is_err());
        assert!(Page::new(None, Some(1001), 20).is_err());
        assert!(Page::new(None, Some(-3), 20).is_err());
    }
}
