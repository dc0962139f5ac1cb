//! The audit chain for auditors and admins: a search (since, subject, action; newest pages by
//! sequence number) and a verification of the whole chain, as `computegate audit verify` does.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use computegate_kyc::audit::{AuditFilter, MAX_AUDIT_PAGE};
use serde::Deserialize;

use super::Staff;
use super::records::Table;
use crate::api::ApiState;
use crate::api::extract::AuditReaders;
use crate::verification::{Verification, parse_since};
use crate::web::{Chrome, FormErrors, WebError, render};

/// Records a search page shows.
const PAGE_ROWS: u32 = 100;

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    errors: FormErrors,
    search: SearchForm,
    table: Table,
    next_after_seq: Option<i64>,
    verification: Option<String>,
    intact: bool,
}

/// The search form, as typed (also the query of the next page).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    since: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    after_seq: Option<i64>,
}

/// The audit routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/audit", get(search))
        .route("/audit/verify", get(verify))
}

async fn search(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<AuditReaders>,
    Query(search): Query<SearchForm>,
) -> Result<Response, WebError> {
    page(&kyc, &staff, search, None).await
}

async fn verify(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<AuditReaders>,
) -> Result<Response, WebError> {
    let result = kyc
        .store()
        .audit()
        .verify_audit_chain()
        .await
        .map_err(|e| WebError::Unavailable(e.to_string()))?;
    let text = match &result.first_broken {
        None => format!(
            "Chain intact: {} records ({} redacted by retention), head seq {}, hash {}.",
            result.records, result.redacted, result.head.seq, result.head.hash
        ),
        Some(broken) => format!(
            "Chain broken at seq {}: {} ({} records verified before it).",
            broken.seq,
            broken.reason.as_str(),
            result.records
        ),
    };
    let intact = result.first_broken.is_none();
    page(&kyc, &staff, SearchForm::default(), Some((text, intact))).await
}

async fn page(
    kyc: &Verification,
    staff: &Staff<AuditReaders>,
    search: SearchForm,
    verification: Option<(String, bool)>,
) -> Result<Response, WebError> {
    let mut errors = FormErrors::new();
    let since = match search.since.trim() {
        "" => None,
        text => {
            let parsed = parse_since(text);
            if parsed.is_none() {
                errors.add("since", "Give a date as YYYY-MM-DD or an RFC 3339 time.");
            }
            parsed
        }
    };
    let blank = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let records = if errors.is_empty() {
        let filter = AuditFilter {
            since,
            subject: blank(&search.subject),
            action: blank(&search.action),
            after_seq: search.after_seq,
            limit: PAGE_ROWS.min(MAX_AUDIT_PAGE),
        };
        kyc.store()
            .audit()
            .audit_page(&filter)
            .await
            .map_err(|e| WebError::Unavailable(e.to_string()))?
    } else {
        Vec::new()
    };
    let next_after_seq = (records.len() as u32 == PAGE_ROWS)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let table = Table::of(
        &records,
        &[
            ("/seq", "Seq"),
            ("/at", "When"),
            ("/actor", "Actor"),
            ("/action", "Action"),
            ("/subject", "Subject"),
            ("/detail", "Detail"),
        ],
        "/seq",
        |_| None,
    );
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (verification, intact) = match verification {
        Some((text, intact)) => (Some(text), intact),
        None => (None, false),
    };
    let page = AuditPage {
        chrome: staff.chrome("Audit chain", "audit"),
        errors,
        search,
        table,
        next_after_seq,
        verification,
        intact,
    };
    Ok((status, render(&page)).into_response())
}
