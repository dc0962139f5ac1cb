//! How timestamps are bound: [`DbTime`] stores UTC with microsecond precision, as
//! `TIMESTAMPTZ` in PostgreSQL and as fixed-width RFC 3339 text in SQLite.
//!
//! sqlx's own SQLite encoding of `OffsetDateTime` omits zero fractions and keeps the offset, so
//! `…:00Z` sorts after `…:00.5Z` and comparisons in SQL go wrong. Fixed-width UTC text sorts in
//! time order, which lets `expires_at > $1` mean the same on both backends. Reads decode back
//! to `OffsetDateTime` with sqlx's ordinary decoders.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Encode, Postgres, Sqlite, Type};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// `2024-05-01T12:00:00.000000Z`: RFC 3339, always six fraction digits, always `Z`.
const SQLITE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// A timestamp ready to bind: converted to UTC and truncated to microseconds (PostgreSQL's
/// precision), so values read back compare equal on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTime(OffsetDateTime);

// === impl DbTime ===

impl DbTime {
    /// Normalizes `t` for storage.
    pub fn new(t: OffsetDateTime) -> DbTime {
        let utc = t.to_offset(UtcOffset::UTC);
        let micros = utc.microsecond();
        // `replace_microsecond` only fails for values ≥ 1_000_000, and `microsecond()` is
        // always below that.
        let truncated = utc.replace_microsecond(micros).unwrap_or(utc);
        DbTime(truncated)
    }

    /// The normalized value.
    pub fn get(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for DbTime {
    fn from(t: OffsetDateTime) -> DbTime {
        DbTime::new(t)
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> <Sqlite as Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for DbTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        let text = self.0.format(SQLITE_FORMAT)?;
        <String as Encode<'_, Sqlite>>::encode(text, buf)
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> <Postgres as Database>::TypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn normalizes_to_utc_micros() {
        let t = datetime!(2024-05-01 14:00:00.123456789 +02:00);
        let db = DbTime::new(t);
        assert_eq!(db.get(), datetime!(2024-05-01 12:00:00.123456 UTC));
        assert_eq!(db.get().offset(), UtcOffset::UTC);
    }

    #[test]
    fn sqlite_text_sorts_in_time_order() {
        let whole = DbTime::new(datetime!(2024-05-01 12:00:00 UTC));
        let half = DbTime::new(datetime!(2024-05-01 12:00:00.5 UTC));
        let a = whole.0.format(SQLITE_FORMAT).unwrap();
        let b = half.0.format(SQLITE_FORMAT).unwrap();
        assert_eq!(a, "2024-05-01T12:00:00.000000Z");
        assert!(a < b);
        // And it still parses as RFC 3339, which is what sqlx's SQLite decoder tries first.
        let parsed =
            OffsetDateTime::parse(&b, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed, half.get());
    }
}
