//! Denied-party screening: the US Consolidated Screening List (CSV or JSON), the OFAC SDN list
//! (`sdn.csv` with `alt.csv` and `add.csv`) and OpenSanctions FollowTheMoney JSON lines, each
//! parsed into one normalized [`ListEntry`] shape, indexed in memory and matched in two stages.
//!
//! 1. **Candidates** ([`ScreeningIndex`]): an inverted index over normalized name tokens
//!    ([`normalize`]: NFKC, case fold, transliteration to Latin, diacritics, homoglyphs, token
//!    order, legal suffixes, Arabic compound names), widened by a deletion neighbourhood so a
//!    one-letter typo still finds the token, and by [`phonetic`] skeleton keys so another
//!    romanization of the same name (`Chtcherbakov`, `Schtscherbakow`, `Shcherbakov`) does too.
//!    A multi-token query only keeps names that share at least two tokens.
//! 2. **Score** ([`score`]): name similarity (Jaro-Winkler on the aligned token strings blended
//!    with a token-set measure; tokens pair by spelling or by phonetic key) corroborated or
//!    contradicted by date of birth, country and identifier numbers. Every contribution is a
//!    [`Feature`] in the [`MatchExplanation`], so a reviewer sees why. A single-token or
//!    surname-only match, a match by sound alone and a weak-alias-only match are never a hit
//!    without corroboration; a kind mismatch (person against a vessel) is not even a review.
//!
//! Everything here is pure and deterministic; the [`Store`](crate::Store) methods in `store`
//! import list versions, load an index and record results (tables `screening_lists`,
//! `screening_entries`, `screening_results`).

mod country;
mod date;
mod index;
pub mod normalize;
pub mod parse;
pub mod phonetic;
pub mod score;
mod store;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::country::country_code;
pub use self::date::PartialDate;
pub use self::index::{IndexStats, RankedMatch, ScreeningIndex};
pub use self::parse::{ParseError, ParseStats, RecordError};
pub use self::score::{ScoringConfig, ScoringConfigError, Thresholds};
pub use self::store::{
    BATCH_ROWS, ImportRequest, ListInput, ListVersion, STALE_IMPORT, ScreeningError,
    StoredScreening,
};

/// What a list entry (or a screened subject) is. Only compatible kinds can match: a person is
/// never a hit on a vessel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A natural person.
    Person,
    /// A company, organization, public body or other legal entity.
    Organization,
    /// A ship.
    Vessel,
    /// An aircraft.
    Aircraft,
    /// The list does not say (for example CSL rows without a `type`); compatible with all.
    Other,
}

/// One denied party, normalized from any supported list format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Unique within a list version: `csl:<source>:<id>`, `sdn:<ent_num>`, `os:<id>`.
    pub key: String,
    /// The list the entry comes from (CSL `source`, `OFAC SDN`, OpenSanctions datasets).
    pub source: String,
    /// Person, organization, vessel, aircraft or unknown.
    pub kind: EntryKind,
    /// The primary name first, then strong aliases; display form (`Given SURNAME`).
    pub names: Vec<String>,
    /// Low-quality aliases: they corroborate a match but never make one alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weak_aliases: Vec<String>,
    /// Dates of birth as precise as the list gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates_of_birth: Vec<PartialDate>,
    /// ISO 3166 alpha-2 codes (nationality, citizenship, address, flag), upper case, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// Identifier numbers (passport, national id, registration, IMO…) as listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_numbers: Vec<String>,
    /// Sanctions programmes or list topics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
}

/// The list formats `computegate screening import --format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFormat {
    /// US Consolidated Screening List, CSV (with header) or JSON (`{"results":[…]}`); the
    /// parser tells them apart by the first non-blank byte.
    Csl,
    /// OFAC SDN `sdn.csv` (12 columns, no header) with optional `alt.csv` and `add.csv`.
    Sdn,
    /// OpenSanctions FollowTheMoney entities, one JSON object per line.
    #[serde(rename = "opensanctions")]
    OpenSanctions,
}

/// Who is screened: an applicant, an organization or a beneficial owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreeningSubject {
    /// Person or organization (other kinds are accepted and matched like the list's).
    pub kind: EntryKind,
    /// The full name as given; any script, any order.
    pub full_name: String,
    /// Date of birth, when known (individuals).
    pub date_of_birth: Option<PartialDate>,
    /// Nationality, residence, jurisdiction… as ISO alpha-2 codes or country names.
    pub countries: Vec<String>,
    /// Document or registration numbers.
    pub id_numbers: Vec<String>,
}

/// What a screening concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Below the review threshold.
    Clear,
    /// At or above the review threshold (or a hit that the rules cap): a person decides.
    Review,
    /// At or above the hit threshold.
    Hit,
}

/// The outcome of screening one subject against one list version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreeningResult {
    /// The list version the index was built from.
    pub list_version: Uuid,
    /// Score of the best candidate in `[0, 1]`; 0 when there was none.
    pub score: f64,
    /// The decision for that score under the index's thresholds.
    pub decision: Decision,
    /// The best candidate and why it scored as it did.
    pub best: Option<MatchExplanation>,
}

/// Why one list entry scored as it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchExplanation {
    /// [`ListEntry::key`] of the matched entry.
    pub entry_key: String,
    /// The entry's name (or alias) that matched best, as listed.
    pub matched_name: String,
    /// Every contribution to the score; their `weight`s add up to the score before it is
    /// clamped to `[0, 1]`.
    pub features: Vec<Feature>,
}

/// One contribution to a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// Stable identifier: `name_jaro_winkler`, `name_token_set`, `date_of_birth`, `country`,
    /// `id_number`, `weak_alias`, `rule_single_token`, `rule_phonetic_only`,
    /// `rule_kind_mismatch`.
    pub name: String,
    /// The measured value (a similarity in `[0, 1]`, or +1 / 0 / −1 for agree / unknown /
    /// disagree).
    pub value: f64,
    /// What this feature added to the score (negative for a contradiction or a cap).
    pub weight: f64,
    /// Human-readable detail for the reviewer.
    pub note: String,
}

// === impl EntryKind ===

crate::names::stored_enum!(EntryKind {
    Person => "person",
    Organization => "organization",
    Vessel => "vessel",
    Aircraft => "aircraft",
    Other => "other",
});

impl EntryKind {
    /// Whether an entry of kind `other` may match a subject of this kind.
    pub fn compatible(self, other: EntryKind) -> bool {
        self == other || self == EntryKind::Other || other == EntryKind::Other
    }
}

// === impl ListFormat ===

// `as_str` is the name used on the command line and in `screening_lists.format`.
crate::names::stored_enum!(ListFormat { Csl => "csl", Sdn => "sdn", OpenSanctions => "opensanctions" });

// === impl Decision ===

crate::names::stored_enum!(Decision { Clear => "clear", Review => "review", Hit => "hit" });

// === impl ScreeningSubject ===

impl ScreeningSubject {
    /// A subject with only a kind and a name.
    pub fn new(kind: EntryKind, full_name: impl Into<String>) -> ScreeningSubject {
        ScreeningSubject {
            kind,
            full_name: full_name.into(),
            date_of_birth: None,
            countries: Vec::new(),
            id_numbers: Vec::new(),
        }
    }

    /// A person with a name.
    pub fn person(full_name: impl Into<String>) -> ScreeningSubject {
        ScreeningSubject::new(EntryKind::Person, full_name)
    }

    /// An organization with a name.
    pub fn organization(full_name: impl Into<String>) -> ScreeningSubject {
        ScreeningSubject::new(EntryKind::Organization, full_name)
    }
}
