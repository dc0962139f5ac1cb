//! The incident model: the request as staff send it, its validation into a [`ValidIncident`],
//! the recorded incident and its list line, the review flags partners' bundles raise, the status
//! machine (open → reported → closed) and the one error type of the area.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::indicators::{self, Indicator, IndicatorKind};
use super::stix_import::StixError;
use crate::StoreError;
use crate::crypto::CryptoError;

/// Longest incident kind, in characters.
pub const MAX_KIND_CHARS: usize = 64;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Most indicators one incident carries.
pub const MAX_INDICATORS: usize = 100;
/// Most customers, organizations or runs one incident names (each).
pub const MAX_TARGETS: usize = 100;

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Recorded; being worked on.
    Open,
    /// Reported to the authority or shared with partners.
    Reported,
    /// Done.
    Closed,
}

crate::names::stored_enum!(IncidentStatus {
    Open => "open",
    Reported => "reported",
    Closed => "closed",
});

/// An incident as staff send it (`POST /staff/v1/incidents`, before validation).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// A short code: lower-case letters, digits, `_` and `-` (e.g. `account_sharing`).
    pub kind: String,
    /// What happened (shared with partners: no personal data here).
    pub description: String,
    /// Our customers it concerns.
    #[serde(default)]
    pub customers: Vec<Uuid>,
    /// Our organizations it concerns.
    #[serde(default)]
    pub organizations: Vec<Uuid>,
    /// Our training runs (ledger run ids) it concerns.
    #[serde(default)]
    pub runs: Vec<Uuid>,
    /// Its indicators.
    #[serde(default)]
    pub indicators: Vec<IndicatorInput>,
}

/// One indicator as sent: `{"type", "value"}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorInput {
    /// `ipv4`, `ipv6`, `email_domain`, `payment_fingerprint`, `document_sha256` or `api_key_id`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value.
    pub value: String,
}

/// A [`NewIncident`] that passed [`NewIncident::validate`]; the only thing the store records.
#[derive(Debug, Clone)]
pub struct ValidIncident {
    pub(super) kind: String,
    pub(super) description: String,
    pub(super) customers: Vec<Uuid>,
    pub(super) organizations: Vec<Uuid>,
    pub(super) runs: Vec<Uuid>,
    pub(super) indicators: Vec<Indicator>,
}

/// A recorded incident with its indicators in clear (staff with case-reading roles only).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Incident {
    /// Incident id.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its description.
    pub description: String,
    /// Where it stands.
    pub status: IncidentStatus,
    /// Customers it concerns.
    pub customers: Vec<Uuid>,
    /// Organizations it concerns.
    pub organizations: Vec<Uuid>,
    /// Runs it concerns.
    pub runs: Vec<Uuid>,
    /// Its indicators, in the order recorded.
    #[schema(value_type = Vec<Object>)]
    pub indicators: Vec<IncidentIndicator>,
    /// Who recorded it (`staff:<id>`, `system:cli`).
    pub created_by: String,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One indicator of a recorded incident: `{"id","type","value"}`.
#[derive(Debug, Clone)]
pub struct IncidentIndicator {
    /// Indicator id (the STIX indicator id is derived from it).
    pub id: Uuid,
    /// The validated value.
    pub indicator: Indicator,
}

/// A line of the incident list: no indicator values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct IncidentSummary {
    /// Incident id.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Where it stands (`open`, `reported`, `closed`).
    pub status: String,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A review flag a partner's indicator raised on one of our customers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct IncidentFlag {
    /// Flag id.
    pub id: Uuid,
    /// The customer flagged.
    pub customer_id: Uuid,
    /// The partner (the bundle identity's name).
    pub partner: String,
    /// The partner's STIX indicator id.
    pub partner_indicator: String,
    /// What matched: `ipv4`, `email_domain`, ….
    pub indicator_type: String,
    /// The partner's context: their incident's description (or the indicator's).
    pub context: String,
    /// The partner's bundle id.
    pub bundle_id: String,
    /// When it was raised.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Why an incident operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentError {
    /// The request has bad fields, each `(field, problem)`.
    #[error("invalid incident ({} field errors)", .0.len())]
    Invalid(Vec<(String, String)>),
    /// No such incident.
    #[error("no such incident")]
    NotFound,
    /// The status change is not one of open → reported → closed.
    #[error("an incident that is {from} cannot become {to}")]
    Transition {
        /// The current status.
        from: IncidentStatus,
        /// The status asked for.
        to: IncidentStatus,
    },
    /// A bundle to import is not one we can read.
    #[error(transparent)]
    Bundle(#[from] StixError),
    /// A bundle to import is this deployment's own export.
    #[error("the bundle is this deployment's own export")]
    OwnBundle,
    /// A sealed indicator value did not open, or sealing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(IncidentError);

// === impl IncidentStatus ===

impl IncidentStatus {
    /// The status after moving to `to`: only open → reported and reported → closed.
    pub fn move_to(self, to: IncidentStatus) -> Result<IncidentStatus, IncidentError> {
        match (self, to) {
            (IncidentStatus::Open, IncidentStatus::Reported)
            | (IncidentStatus::Reported, IncidentStatus::Closed) => Ok(to),
            (from, to) => Err(IncidentError::Transition { from, to }),
        }
    }
}

// === impl NewIncident ===

impl NewIncident {
    /// Checks every field, naming each bad one (`indicators[2].value`, …).
    pub fn validate(self) -> Result<ValidIncident, IncidentError> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut bad = |field: &str, problem: &str| problems.push((field.into(), problem.into()));
        let kind = self.kind.trim().to_owned();
        let kind_ok = (1..=MAX_KIND_CHARS).contains(&kind.len())
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !kind_ok {
            bad(
                "kind",
                "1–64 lower-case letters, digits, '_' or '-' (e.g. account_sharing)",
            );
        }
        let description = self.description.trim().to_owned();
        let chars = description.chars().count();
        if chars == 0 || chars > MAX_DESCRIPTION_CHARS {
            bad("description", "required, at most 4000 characters");
        }
        for (field, ids) in [
            ("customers", &self.customers),
            ("organizations", &self.organizations),
            ("runs", &self.runs),
        ] {
            if ids.len() > MAX_TARGETS {
                bad(field, "at most 100 ids");
            }
        }
        if self.indicators.len() > MAX_INDICATORS {
            bad("indicators", "at most 100 indicators");
        }
        let mut indicators = Vec::with_capacity(self.indicators.len());
        for (i, input) in self.indicators.iter().enumerate() {
            match IndicatorKind::from_name(input.kind.trim()) {
                None => bad(
                    &format!("indicators[{i}].type"),
                    &indicators::IndicatorError::UnknownKind.to_string(),
                ),
                Some(kind) => match Indicator::parse(kind, &input.value) {
                    Ok(v) => indicators.push(v),
                    Err(e) => bad(&format!("indicators[{i}].value"), &e.to_string()),
                },
            }
        }
        if !problems.is_empty() {
            return Err(IncidentError::Invalid(problems));
        }
        Ok(ValidIncident {
            kind,
            description,
            customers: dedup(self.customers),
            organizations: dedup(self.organizations),
            runs: dedup(self.runs),
            indicators,
        })
    }
}

/// Ids in order of first mention, each once.
fn dedup(ids: Vec<Uuid>) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

// === impl ValidIncident ===

impl ValidIncident {
    /// The customers it names.
    pub fn customers(&self) -> &[Uuid] {
        &self.customers
    }
}

// === impl IncidentIndicator ===

impl Serialize for IncidentIndicator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("IncidentIndicator", 3)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("type", self.indicator.kind().as_str())?;
        st.serialize_field("value", self.indicator.value())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NewIncident {
        NewIncident {
            kind: "account_sharing".into(),
            description: "keys resold on a forum".into(),
            customers: vec![Uuid::nil(), Uuid::nil()],
            indicators: vec![IndicatorInput {
                kind: "ipv4".into(),
                value: "203.0.113.7".into(),
            }],
            ..NewIncident::default()
        }
    }

    #[test]
    fn a_good_request_validates() {
        let valid = request().validate().unwrap();
        assert_eq!(valid.customers(), &[Uuid::nil()], "duplicates dropped");
        assert_eq!(valid.indicators[0].value(), "203.0.113.7");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut req = request();
        req.kind = "Account Sharing".into();
        req.description = "  ".into();
        req.indicators = vec![
            IndicatorInput {
                kind: "ipv4".into(),
                value: "999.0.0.1".into(),
            },
            IndicatorInput {
                kind: "url".into(),
                value: "https://x".into(),
            },
        ];
        let Err(IncidentError::Invalid(fields)) = req.validate() else {
            panic!("refused")
        };
        let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "kind",
                "description",
                "indicators[0].value",
                "indicators[1].type"
            ]
        );
        assert!(
            !fields.iter().any(|(_, p)| p.contains("999.0.0.1")),
            "values are not echoed"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut req = request();
        req.description = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        req.runs = vec![Uuid::nil(); MAX_TARGETS + 1];
        let Err(IncidentError::Invalid(fields)) = req.validate() else {
            panic!("refused")
        };
        let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["description", "runs"]);
    }

    #[test]
    fn status_moves_only_forward_one_step() {
        use IncidentStatus::*;
        for from in IncidentStatus::ALL {
            for to in IncidentStatus::ALL {
                let allowed = matches!((from, to), (Open, Reported) | (Reported, Closed));
                assert_eq!(from.move_to(to).is_ok(), allowed, "{from} → {to}");
            }
        }
    }

    #[test]
    fn an_indicator_serializes_as_type_and_value() {
        let ind = IncidentIndicator {
            id: Uuid::nil(),
            indicator: Indicator::parse(IndicatorKind::EmailDomain, "X.example").unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&ind).unwrap(),
            serde_json::json!({"id": Uuid::nil(), "type": "email_domain", "value": "x.example"})
        );
    }
}
