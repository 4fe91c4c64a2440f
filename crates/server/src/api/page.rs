//! `page` on the list endpoints (streams, clips, videos): Gcore's paging, read from
//! the query string in this one place.
//!
//! Pages count from 1 and hold [`PAGE_SIZE`] items each; a page past the end is an
//! empty array, so a client that pages until it gets nothing stops. No `page` is
//! page 1. Every other query parameter (`per_page`, `with_broadcasts`, …) is ignored,
//! as unknown body fields are (`ref/api.md` "Paging").

use crate::error::ApiError;

/// Items per page: Gcore's Python SDK and API reference name the `page` parameter
/// but not its size; 25 is what this server answers.
pub const PAGE_SIZE: usize = 25;

/// A 1-based page number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page(u64);

impl Page {
    /// Reads `page` from a request's query string (`None`: page 1). A `page` that is
    /// not an integer from 1 is a 400 naming it.
    pub fn from_query(query: Option<&str>) -> Result<Page, ApiError> {
        let value = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("page="));
        match value {
            None => Ok(Page(1)),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|&n| n >= 1 && v.bytes().all(|b| b.is_ascii_digit()))
                .map(Page)
                .ok_or_else(|| ApiError::bad_field("page", "page must be an integer from 1")),
        }
    }

    /// How many items come before this page.
    pub fn skip(self) -> usize {
        usize::try_from((self.0 - 1).saturating_mul(PAGE_SIZE as u64)).unwrap_or(usize::MAX)
    }

    /// This page of `items`.
    pub fn of<T>(self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.skip())
            .take(PAGE_SIZE)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(q: &str) -> Result<Page, ApiError> {
        Page::from_query(Some(q))
    }

    #[test]
    fn reads_page_and_ignores_the_rest() {
        assert_eq!(Page::from_query(None).unwrap(), Page(1));
        assert_eq!(page("").unwrap(), Page(1));
        assert_eq!(page("page=3").unwrap(), Page(3));
        assert_eq!(page("per_page=100&page=2&x").unwrap(), Page(2));
        assert_eq!(page("pages=9&subpage=4").unwrap(), Page(1));
        for bad in [
            "page=0", "page=", "page=-1", "page=+2", "page=1.5", "page=x",
        ] {
            match page(bad) {
                Err(ApiError::BadRequest { field, .. }) => assert_eq!(field, Some("page"), "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn pages_slice_and_end_empty() {
        let items: Vec<u32> = (0..60).collect();
        assert_eq!(Page(1).of(items.clone()), (0..25).collect::<Vec<_>>());
        assert_eq!(Page(3).of(items.clone()), (50..60).collect::<Vec<_>>());
        assert!(Page(4).of(items.clone()).is_empty());
        assert!(Page(u64::MAX).of(items).is_empty());
    }
}
