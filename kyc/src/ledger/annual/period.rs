//! The period a pack covers: a calendar year, or one quarter of it for the quarterly summary,
//! checked against the clock, with the moment the pack was made. Imports no other module of
//! the pack.

use time::{Date, Month, OffsetDateTime};

use crate::store::DbTime;

/// Earliest year a pack can be asked for (no record predates the product).
pub const FIRST_YEAR: i32 = 2000;

/// The calendar year or quarter a pack covers, and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The calendar year.
    pub year: i32,
    /// The quarter (1–4) of a quarterly summary; `None` for the annual pack.
    pub quarter: Option<u8>,
    pub(super) start: OffsetDateTime,
    pub(super) end: OffsetDateTime,
    pub(super) generated_at: OffsetDateTime,
}

/// A period that cannot have a pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeriodError {
    /// Before the first year or after the current one.
    #[error("year {year} is not between {FIRST_YEAR} and the current year {current}")]
    Year {
        /// The year asked for.
        year: i32,
        /// The current year.
        current: i32,
    },
    /// Not a quarter number.
    #[error("quarter {quarter} is not 1, 2, 3 or 4")]
    Quarter {
        /// The quarter asked for.
        quarter: u8,
    },
    /// A quarter of the current year that has not begun.
    #[error("{year}-Q{quarter} has not begun yet")]
    NotBegun {
        /// The year.
        year: i32,
        /// The quarter.
        quarter: u8,
    },
}

// === impl Period ===

impl Period {
    /// The calendar year `year`, as of `now`: refused before [`FIRST_YEAR`] or after the current
    /// year.
    pub fn year(year: i32, now: OffsetDateTime) -> Result<Period, PeriodError> {
        let start = year_start(year, now)?;
        let bad = PeriodError::Year {
            year,
            current: now.year(),
        };
        let end = month_start(year + 1, Month::January).ok_or(bad)?;
        Ok(Period {
            year,
            quarter: None,
            start,
            end,
            generated_at: to_seconds(now),
        })
    }

    /// Quarter `quarter` (1–4) of `year`, as of `now`: the year as for [`Period::year`], and a
    /// quarter that has begun.
    pub fn quarter(year: i32, quarter: u8, now: OffsetDateTime) -> Result<Period, PeriodError> {
        year_start(year, now)?;
        let first_month = match quarter {
            1 => Month::January,
            2 => Month::April,
            3 => Month::July,
            4 => Month::October,
            _ => return Err(PeriodError::Quarter { quarter }),
        };
        let bad = PeriodError::Year {
            year,
            current: now.year(),
        };
        let start = month_start(year, first_month).ok_or(bad.clone())?;
        if start > now {
            return Err(PeriodError::NotBegun { year, quarter });
        }
        let end = match quarter {
            4 => month_start(year + 1, Month::January),
            _ => month_start(year, first_month.nth_next(3)),
        }
        .ok_or(bad)?;
        Ok(Period {
            year,
            quarter: Some(quarter),
            start,
            end,
            generated_at: to_seconds(now),
        })
    }

    pub(super) fn bounds(&self) -> (DbTime, DbTime) {
        (DbTime::new(self.start), DbTime::new(self.end))
    }

    /// `annual` or `quarterly`.
    pub(super) fn kind(&self) -> &'static str {
        match self.quarter {
            None => "annual",
            Some(_) => "quarterly",
        }
    }
}

/// Midnight UTC on 1 January of `year`, if it is a year a pack can cover at `now`.
fn year_start(year: i32, now: OffsetDateTime) -> Result<OffsetDateTime, PeriodError> {
    let current = now.year();
    let bad = PeriodError::Year { year, current };
    if !(FIRST_YEAR..=current).contains(&year) {
        return Err(bad);
    }
    month_start(year, Month::January).ok_or(bad)
}

/// Midnight UTC on the first of `month` in `year` (`None` past the calendar's range).
fn month_start(year: i32, month: Month) -> Option<OffsetDateTime> {
    Date::from_calendar_date(year, month, 1)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// `t` without its fraction of a second (the pack says when it was made, to the second).
fn to_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_year_runs_from_new_year_to_new_year_and_future_or_ancient_years_are_refused() {
        let now = datetime!(2030-05-01 12:00:00.75 UTC);
        let p = Period::year(2029, now).unwrap();
        assert_eq!(p.start, datetime!(2029-01-01 0:00 UTC));
        assert_eq!(p.end, datetime!(2030-01-01 0:00 UTC));
        assert_eq!(p.generated_at, datetime!(2030-05-01 12:00 UTC));
        assert!(Period::year(2030, now).is_ok());
        let err = Period::year(2031, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "year 2031 is not between 2000 and the current year 2030"
        );
        assert!(Period::year(1999, now).is_err());
    }

    #[test]
    fn quarters_run_three_months_and_only_begun_ones_are_accepted() {
        let now = datetime!(2030-05-01 12:00 UTC);
        let q4 = Period::quarter(2029, 4, now).unwrap();
        assert_eq!(q4.start, datetime!(2029-10-01 0:00 UTC));
        assert_eq!(q4.end, datetime!(2030-01-01 0:00 UTC));
        let q2 = Period::quarter(2030, 2, now).unwrap();
        assert_eq!(q2.start, datetime!(2030-04-01 0:00 UTC));
        assert_eq!(q2.end, datetime!(2030-07-01 0:00 UTC));
        assert_eq!(q2.kind(), "quarterly");
        assert_eq!(
            Period::quarter(2030, 3, now).unwrap_err().to_string(),
            "2030-Q3 has not begun yet"
        );
        assert_eq!(
            Period::quarter(2030, 5, now).unwrap_err().to_string(),
            "quarter 5 is not 1, 2, 3 or 4"
        );
        assert!(Period::quarter(2031, 1, now).is_err());
    }
}
