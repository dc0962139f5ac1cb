//! Cursor pagination, the one contract every list of the control-plane APIs follows:
//! `?limit=N&cursor=C`, answered with the page's items and `next`, the cursor of the page after
//! (`null` on the last page).
//!
//! A cursor is opaque to clients: base64url of the list's sort key at the last item returned
//! (`<unix nanoseconds>.<id>` for lists ordered by a time and an id, the sequence number for
//! the audit chain). The store pages by that key (a keyset query), so a page never skips or
//! repeats an item when rows are added meanwhile, and the order is total (the id breaks ties).
//! A page asks the store for one item more than it answers: that extra item says whether a next
//! page exists, so the last page has `next: null` rather than pointing at an empty page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::error::ApiError;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size a list answers.
pub const MAX_LIMIT: u32 = 500;

/// The query of a list that takes nothing but the page (`?limit=&cursor=`).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1..=500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// What a request asked for: how many items, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// Items to answer (1..=[`MAX_LIMIT`]).
    pub limit: u32,
    /// The sort key of the last item of the previous page.
    pub after: Option<K>,
}

/// A page ready to answer: at most `limit` items and the cursor of the next page.
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// The next page's cursor; `None` on the last page.
    pub next: Option<String>,
}

/// A sort key that can travel in a cursor.
pub trait CursorKey: Sized {
    /// The key as cursor text (before base64).
    fn encode(&self) -> String;
    /// The key from cursor text; `None` when it is not one.
    fn decode(text: &str) -> Option<Self>;
}

// === impl PageRequest ===

impl<K: CursorKey> PageRequest<K> {
    /// Parses `limit` (default [`DEFAULT_LIMIT`]) and `cursor`. A limit out of range is a 422
    /// naming it; a cursor this list did not issue is a 400.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => return Err(ApiError::field("limit", "an integer 1..=500")),
        };
        let after = match cursor {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or(ApiError::BadCursor)?),
        };
        Ok(PageRequest { limit, after })
    }

    /// How many items to ask the store for: one more than the page, to learn whether another
    /// page follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Cuts what the store answered (at most [`Self::fetch`] items) to the page, with the next
    /// cursor taken from the last item kept when more followed.
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> K) -> Page<T> {
        let more = items.len() > self.limit as usize;
        items.truncate(self.limit as usize);
        let next = match items.last() {
            Some(last) if more => Some(URL_SAFE_NO_PAD.encode(key(last).encode())),
            _ => None,
        };
        Page { items, next }
    }
}

fn decode_cursor<K: CursorKey>(cursor: &str) -> Option<K> {
    // Cursors are short; a long one is not ours, whatever it decodes to.
    if cursor.len() > 200 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    K::decode(std::str::from_utf8(&bytes).ok()?)
}

// === impl CursorKey ===

/// Lists ordered by a time and a UUID (jobs, runs, reports, reviews, the review queue).
impl CursorKey for (OffsetDateTime, uuid::Uuid) {
    fn encode(&self) -> String {
        format!("{}.{}", self.0.unix_timestamp_nanos(), self.1)
    }

    fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(at.parse().ok()?).ok()?;
        Some((at, uuid::Uuid::parse_str(id).ok()?))
    }
}

/// Lists ordered by a time and a text id (API keys, whose ids are `cg_…`).
impl CursorKey for (OffsetDateTime, String) {
    fn encode(&self) -> String {
        format!("{}.{}", self.0.unix_timestamp_nanos(), self.1)
    }

    fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(at.parse().ok()?).ok()?;
        (!id.is_empty()).then(|| (at, id.to_owned()))
    }
}

/// The audit chain, ordered by sequence number.
impl CursorKey for i64 {
    fn encode(&self) -> String {
        self.to_string()
    }

    fn decode(text: &str) -> Option<Self> {
        text.parse().ok().filter(|n| *n >= 0)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    type TimeId = (OffsetDateTime, Uuid);

    #[test]
    fn a_page_with_more_behind_it_names_the_next_cursor() {
        let req = PageRequest::<i64>::parse(Some(2), None).unwrap();
        assert_eq!(req.fetch(), 3);
        let page = req.page(vec![1_i64, 2, 3], |n| *n);
        assert_eq!(page.items, [1, 2]);
        let next = page.next.expect("a next page");
        let again = PageRequest::<i64>::parse(Some(2), Some(&next)).unwrap();
        assert_eq!(again.after, Some(2));
        // The last page (no extra item) has no next.
        assert_eq!(again.page(vec![3_i64], |n| *n).next, None);
        assert_eq!(req.page(vec![1_i64, 2], |n| *n).next, None);
    }

    #[test]
    fn time_and_id_keys_round_trip_exactly() {
        let key: TimeId = (datetime!(2026-12-07 03:00:00.123456 UTC), Uuid::now_v7());
        let req = PageRequest::<TimeId>::parse(None, None).unwrap();
        assert_eq!(req.limit, DEFAULT_LIMIT);
        let page = req.page(vec![key; 101], |k| *k);
        let back = PageRequest::<TimeId>::parse(None, page.next.as_deref()).unwrap();
        assert_eq!(back.after, Some(key));
        let text: (OffsetDateTime, String) = (key.0, "cg_abc".into());
        assert_eq!(
            <(OffsetDateTime, String)>::decode(&text.encode()),
            Some(text)
        );
    }

    #[test]
    fn bad_cursors_and_limits_are_refused() {
        for bad in ["", "!!", "bm90IGEga2V5", &"A".repeat(300)] {
            let err = PageRequest::<TimeId>::parse(None, Some(bad)).unwrap_err();
            assert!(matches!(err, ApiError::BadCursor), "{bad:?}");
        }
        // An audit cursor is not a job cursor.
        let seq = URL_SAFE_NO_PAD.encode("42");
        assert!(PageRequest::<TimeId>::parse(None, Some(&seq)).is_err());
        assert!(PageRequest::<i64>::parse(None, Some(&seq)).is_ok());
        for limit in [0, MAX_LIMIT + 1] {
            let err = PageRequest::<i64>::parse(Some(limit), None).unwrap_err();
            assert!(matches!(err, ApiError::Invalid(_)), "{limit}");
        }
    }
}
