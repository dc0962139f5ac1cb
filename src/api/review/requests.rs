//! The staff API's request documents and query parameters, parsed into the store's terms with
//! every problem reported at once.

use computegate_kyc::accounts::Tier;
use computegate_kyc::verification::{
    ApplicationStatus, ApprovalEvidence, DecisionRequest, ManualCheck, QueueFilter, StaffDecision,
};
use computegate_policy::Evidence;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::error::ApiError;
use crate::api::page::{MAX_LIMIT, PageRequest};
use crate::verification::Verification;

/// Longest reason, in characters (the state machine's limit).
const MAX_REASON_CHARS: usize = 1000;

/// The review queue's filters and page (each parameter checked, every bad one reported).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct QueueQuery {
    /// Application status (default `pending_review`).
    pub(crate) status: Option<String>,
    /// Only risk scores at or above this (0..=100).
    pub(crate) min_risk: Option<String>,
    /// Only this primary country (ISO 3166-1 alpha-2).
    pub(crate) country: Option<String>,
    /// Only applications submitted at least this long ago (`90s`, `30m`, `12h`, `7d`).
    pub(crate) older_than: Option<String>,
    /// Items per page, 1..=500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub(crate) limit: Option<String>,
    /// The `next` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// A staff decision on an application.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// `approve`, `reject` or `request_info`.
    pub(crate) action: Option<String>,
    /// The tier granted (approve only).
    pub(crate) tier: Option<String>,
    pub(crate) reason: Option<String>,
    /// `[{"evidence","note"}]`: checks standing in for required evidence not on file.
    pub(crate) manual_checks: Option<Vec<ManualCheckBody>>,
}

/// A manual check standing in for evidence not on file.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManualCheckBody {
    pub(crate) evidence: Option<String>,
    pub(crate) note: Option<String>,
}

/// A staff action's reason (1..=1000 characters; no control or bidirectional-override
/// characters).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    pub(crate) reason: Option<String>,
}

/// The decision request, or every bad field at once.
pub(crate) fn decision_request(
    kyc: &Verification,
    body: &DecisionBody,
) -> Result<DecisionRequest, ApiError> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let action = match body.action.as_deref() {
        Some("approve") => match body.tier.as_deref() {
            Some(name) => match Tier::new(name) {
                Ok(tier) if kyc.tier_defined(name) && name != Tier::UNVERIFIED => {
                    Some(StaffDecision::Approve { tier })
                }
                _ => {
                    errors.push(("tier".into(), "not a tier of the policy in force".into()));
                    None
                }
            },
            None => {
                errors.push(("tier".into(), "required to approve".into()));
                None
            }
        },
        Some("reject") => Some(StaffDecision::Reject),
        Some("request_info") => Some(StaffDecision::RequestInfo),
        Some(_) => {
            errors.push((
                "action".into(),
                "one of approve, reject, request_info".into(),
            ));
            None
        }
        None => {
            errors.push(("action".into(), "required".into()));
            None
        }
    };
    let reason = reason_of(body.reason.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    let manual_checks = manual_checks(body, &mut errors);
    match (action, reason) {
        (Some(action), Some(reason)) if errors.is_empty() => {
            let (reverify_after, evidence) = match &action {
                StaffDecision::Approve { tier } => (
                    kyc.reverify_after(tier.as_str()),
                    ApprovalEvidence {
                        required: kyc.required_evidence(tier.as_str()),
                        manual_checks,
                    },
                ),
                _ => (None, ApprovalEvidence::default()),
            };
            Ok(DecisionRequest {
                action,
                reason,
                reverify_after,
                evidence,
            })
        }
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// The manual checks of an approval, each with a known evidence kind (once) and a note.
fn manual_checks(body: &DecisionBody, errors: &mut Vec<(String, String)>) -> Vec<ManualCheck> {
    let Some(items) = &body.manual_checks else {
        return Vec::new();
    };
    if body.action.as_deref() != Some("approve") {
        errors.push(("manual_checks".into(), "only with action approve".into()));
        return Vec::new();
    }
    if items.len() > Evidence::ALL.len() {
        let most = Evidence::ALL.len();
        errors.push((
            "manual_checks".into(),
            format!("at most {most} entries, one per evidence kind"),
        ));
        return Vec::new();
    }
    let mut checks: Vec<ManualCheck> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |field: &str| format!("manual_checks[{i}].{field}");
        let evidence = match item.evidence.as_deref().map(str::parse::<Evidence>) {
            Some(Ok(e)) if checks.iter().any(|c| c.evidence == e) => {
                errors.push((at("evidence"), "listed twice".into()));
                None
            }
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => {
                let kinds: Vec<&str> = Evidence::ALL.iter().map(|e| e.as_str()).collect();
                errors.push((at("evidence"), format!("one of {}", kinds.join(", "))));
                None
            }
            None => {
                errors.push((at("evidence"), "required".into()));
                None
            }
        };
        let note = reason_of(item.note.as_deref())
            .map_err(|(_, why)| errors.push((at("note"), why)))
            .ok();
        if let (Some(evidence), Some(note)) = (evidence, note) {
            checks.push(ManualCheck { evidence, note });
        }
    }
    checks
}

/// A required reason of 1..=1000 characters, free of control characters (newlines and tabs
/// aside) and of bidirectional-override characters, which could disguise what a reason says in
/// the audit chain, its CSV export or a console.
pub(crate) fn reason_of(reason: Option<&str>) -> Result<String, (String, String)> {
    let bad = |why: &str| ("reason".to_string(), why.to_string());
    match reason {
        None => Err(bad("required")),
        Some(r) if r.trim().is_empty() => Err(bad("must not be blank")),
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(bad("at most 1000 characters")),
        Some(r) if r.chars().any(disguising) => Err(bad(
            "must not contain control or bidirectional-override characters",
        )),
        Some(r) => Ok(r.trim().to_owned()),
    }
}

/// Control characters other than newline and tab, and the Unicode bidirectional embedding,
/// override and isolate characters.
fn disguising(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The queue filter from the query (with the page it asks for: the filter's `limit` fetches
/// one item more than the page), or every bad parameter at once.
pub(crate) fn queue_filter(
    q: &QueueQuery,
    now: OffsetDateTime,
) -> Result<(QueueFilter, PageRequest<(OffsetDateTime, uuid::Uuid)>), ApiError> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut bad = |field: &str, why: &str| errors.push((field.into(), why.into()));
    let status = q
        .status
        .as_deref()
        .and_then(|s| match s.parse::<ApplicationStatus>() {
            Ok(st) => Some(st),
            Err(_) => {
                bad("status", "not an application status");
                None
            }
        });
    let min_risk = q.min_risk.as_deref().and_then(|s| match s.parse::<u8>() {
        Ok(n) if n <= 100 => Some(n),
        _ => {
            bad("min_risk", "an integer 0..=100");
            None
        }
    });
    let country = q.country.as_deref().and_then(|c| {
        if computegate_kyc::verification::countries::is_country_code(c) {
            Some(c.to_owned())
        } else {
            bad("country", "an ISO 3166-1 alpha-2 code in upper case");
            None
        }
    });
    // `checked_sub`: an age reaching before the earliest representable date is a bad value,
    // not a panic.
    let submitted_before = q.older_than.as_deref().and_then(|t| {
        match parse_age(t).and_then(|age| now.checked_sub(age)) {
            Some(at) => Some(at),
            None => {
                bad("older_than", "an age such as 90s, 30m, 12h or 7d");
                None
            }
        }
    });
    let limit = q
        .limit
        .as_deref()
        .map_or(Some(None), |s| match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Some(Some(n)),
            _ => {
                bad("limit", "an integer 1..=500");
                None
            }
        });
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let page = PageRequest::parse(limit, q.cursor.as_deref())?;
    let filter = QueueFilter {
        status,
        min_risk,
        submitted_before,
        country,
        limit: page.fetch(),
        after: page.after,
    };
    Ok((filter, page))
}

/// `<n>` seconds or `<n>s|m|h|d`.
fn parse_age(text: &str) -> Option<time::Duration> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: i64 = digits.parse().ok().filter(|n| *n >= 0)?;
    let seconds = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(time::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_refuse_control_and_bidi_override_characters() {
        assert_eq!(
            reason_of(Some("  checked\non a call\t ")).unwrap(),
            "checked\non a call"
        );
        for sneaky in ["a\u{0}b", "ok \u{202E}gnp.exe", "x\u{2066}y", "bell\u{7}"] {
            let (field, why) = reason_of(Some(sneaky)).unwrap_err();
            assert_eq!(field, "reason");
            assert!(why.contains("control"), "{sneaky:?}: {why}");
        }
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90"), Some(time::Duration::seconds(90)));
        assert_eq!(parse_age("30m"), Some(time::Duration::minutes(30)));
        assert_eq!(parse_age("12h"), Some(time::Duration::hours(12)));
        assert_eq!(parse_age("7d"), Some(time::Duration::days(7)));
        assert_eq!(parse_age("7w"), None);
        assert_eq!(parse_age("-1s"), None);
        assert_eq!(parse_age(""), None);
    }

    #[test]
    fn an_age_beyond_the_calendar_is_a_bad_parameter() {
        let q = QueueQuery {
            status: None,
            min_risk: None,
            country: None,
            older_than: Some("9999999999999d".into()),
            limit: None,
            cursor: None,
        };
        let Err(ApiError::Invalid(errors)) = queue_filter(&q, OffsetDateTime::now_utc()) else {
            panic!("expected invalid");
        };
        assert_eq!(errors[0].0, "older_than");
    }

    #[test]
    fn queue_filters_list_every_bad_parameter() {
        let q = QueueQuery {
            status: Some("nope".into()),
            min_risk: Some("101".into()),
            country: Some("de".into()),
            older_than: Some("soon".into()),
            limit: Some("0".into()),
            cursor: None,
        };
        let Err(ApiError::Invalid(errors)) = queue_filter(&q, OffsetDateTime::now_utc()) else {
            panic!("expected invalid");
        };
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["status", "min_risk", "country", "older_than", "limit"]
        );
    }

    #[test]
    fn reasons_are_required() {
        assert!(reason_of(None).is_err());
        assert!(reason_of(Some("  ")).is_err());
        assert!(reason_of(Some(&"x".repeat(1001))).is_err());
        assert_eq!(reason_of(Some(" ok ")).unwrap(), "ok");
    }
}
