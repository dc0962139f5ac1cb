//! Abuse incidents and threat-indicator sharing: staff record an incident (a kind, a
//! description, the customers, organizations and runs it concerns, and its indicators), move it
//! open → reported → closed, export incidents as a STIX 2.1 bundle for a partner or an
//! authority, and import a partner's bundle, which raises a review flag on every customer one
//! of its indicators matches.
//!
//! - [`indicators`]: indicator types, validation, canonical form, keyed and shared hashes;
//! - [`pattern`]: STIX patterns for those types, written and read;
//! - [`observables`]: STIX cyber-observable objects (SCOs) for those types, written and read;
//! - [`stix_export`]: the bundle an export writes (pure);
//! - [`stix_import`]: reading a partner's bundle (untrusted input; bounded, never panics);
//! - [`matching`]: which of our customers a partner's indicators match (pure);
//! - `store`: the SQL, each change with its audit record in one transaction;
//! - `holdings`: reading what we hold that partners' indicators can match;
//! - `model`: the incident model, its validation, the status machine and the error type.

mod holdings;
pub mod indicators;
pub mod matching;
mod model;
pub mod observables;
pub mod pattern;
pub mod stix_export;
pub mod stix_import;
mod store;

pub use self::model::{
    Incident, IncidentError, IncidentFlag, IncidentIndicator, IncidentStatus, IncidentSummary,
    IndicatorInput, MAX_DESCRIPTION_CHARS, MAX_INDICATORS, MAX_KIND_CHARS, MAX_TARGETS,
    NewIncident, ValidIncident,
};
pub use self::stix_export::{Provider, Sharing};
pub use self::stix_import::StixError;
pub use self::store::{INCIDENT_PAGE_MAX, ImportReport};
