//! The review queue and the case file: filters and claims; the application's fields, documents
//! (images inline), screening with each party's per-feature breakdown and the list version,
//! risk factors, the IDV outcome, the approvals so far (four eyes), the case's history, the
//! customer's linked group and the review flags partners' incident bundles raised on them;
//! the decision, screening-override and customer forms; an organization's members. Every
//! action is the staff API's service call with the same checks.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::verification::{ApplicationStatus, QueueItem};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::records::{Field, Table, fields};
use super::{CONSOLE, Staff};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::api::extract::{Acting, CaseReaders};
use crate::api::review::requests::{
    DecisionBody, ManualCheckBody, QueueQuery, decision_request, queue_filter,
};
use crate::metering::Metering;
use crate::verification::{CustomerAction, Verification};
use crate::web::{Chrome, CsrfForm, FormErrors, WebError, render};

/// Most history lines a case file shows (newest last).
const HISTORY_LINES: u32 = 200;

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    chrome: Chrome,
    errors: FormErrors,
    filter: QueueForm,
    statuses: Vec<(String, String)>,
    table: Table,
    now: String,
    /// The next page's query string, when there is one.
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage {
    chrome: Chrome,
    errors: FormErrors,
    id: Uuid,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    summary: Vec<Field>,
    application: Vec<Field>,
    /// When retention withdrew the application's payload (then `application` is empty).
    identity_purged_at: Option<String>,
    documents: Vec<Document>,
    screening: Vec<Field>,
    parties: Vec<Party>,
    risk_score: String,
    risk: Table,
    idv: Vec<Field>,
    approvals: Vec<String>,
    claimed: Claim,
    history: Table,
    group: Table,
    flags: Table,
    tiers: Vec<(String, String)>,
    decision: DecisionForm,
}

/// Who holds the case.
#[derive(PartialEq, Eq)]
enum Claim {
    Nobody,
    You,
    Other(Uuid),
}

/// A document of a case file; images are shown inline.
struct Document {
    href: String,
    doc_type: String,
    content_type: String,
    size_bytes: u64,
    sha256: String,
    uploaded_at: String,
    image: bool,
}

/// One screened party of a case file, with the features of its best match.
struct Party {
    role: String,
    decision: String,
    score: String,
    matched: String,
    entry: String,
    features: Table,
}

#[derive(Template)]
#[template(path = "console/organization.html")]
struct OrganizationPage {
    chrome: Chrome,
    id: Uuid,
    members: Table,
    invitations: Table,
}

/// The queue's filter form, as typed (empty fields are no filter).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct QueueForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    min_risk: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    older_than: String,
    /// The `next` of the previous page.
    #[serde(default)]
    cursor: String,
}

/// The decision form of a case file.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    manual_evidence: String,
    #[serde(default)]
    manual_note: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    application: Option<Uuid>,
}

/// The queue, case-file, claim, decision, customer and organization routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(queue))
        .route("/applications/{id}", get(case_file))
        .route("/applications/{id}/claim", post(claim))
        .route("/applications/{id}/unclaim", post(unclaim))
        .route("/applications/{id}/decision", post(decide))
        .route(
            "/applications/{id}/screening-override",
            post(override_screening),
        )
        .route("/customers/{id}/suspend", post(suspend))
        .route("/customers/{id}/resume", post(resume))
        .route("/customers/{id}/close", post(close))
        .route("/documents/{id}", get(document))
        .route("/organizations/{id}", get(organization))
}

/// A waiting time to the minute: `45 min`, `3 h 12 min`, `2 d 5 h`.
fn waited(d: time::Duration) -> String {
    let minutes = d.whole_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, _) => format!("{hours} h {mins} min"),
        _ => format!("{days} d {hours} h"),
    }
}

/// `2026-12-07 05:02 UTC`.
pub(super) fn minute(t: OffsetDateTime) -> String {
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

pub(super) fn case_path(id: Uuid) -> String {
    CONSOLE.path(&format!("applications/{id}"))
}

/// A refusal of a form: its field problems next to the fields, any other client error but a
/// role refusal as one problem on `field`; role refusals and server-side failures become the
/// error page.
pub(super) fn form_errors(e: ApiError, field: &str) -> Result<FormErrors, WebError> {
    match FormErrors::from_refusal(e) {
        Err(WebError::Refused {
            status,
            title,
            detail,
        }) if status != StatusCode::FORBIDDEN => {
            let mut errors = FormErrors::new();
            errors.add(field, format!("{title}: {detail}"));
            Ok(errors)
        }
        other => other,
    }
}

async fn queue(
    State(kyc): State<Arc<Verification>>,
    staff: Staff,
    Query(form): Query<QueueForm>,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let blank = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let query = QueueQuery {
        status: blank(&form.status),
        min_risk: blank(&form.min_risk),
        country: blank(&form.country).map(|c| c.to_ascii_uppercase()),
        older_than: blank(&form.older_than),
        limit: None,
        cursor: blank(&form.cursor),
    };
    let (items, next, errors) = match queue_filter(&query, now) {
        Ok((filter, page)) => {
            let items = kyc
                .store()
                .verification()
                .application_queue(&filter)
                .await
                .map_err(|e| WebError::from(ApiError::from(e)))?;
            let page = page.page(items, QueueItem::cursor);
            (page.items, page.next, FormErrors::new())
        }
        Err(e) => (Vec::new(), None, form_errors(e, "status")?),
    };
    // Each line with how long it has waited since its last submission.
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let mut line = serde_json::to_value(item).unwrap_or_default();
            if let (Some(at), Some(obj)) = (item.submitted_at, line.as_object_mut()) {
                obj.insert("waiting".into(), waited(now - at).into());
            }
            line
        })
        .collect();
    let table = Table::of(
        &items,
        &[
            ("/id", "Application"),
            ("/waiting", "Waiting"),
            ("/status", "Status"),
            ("/kind", "Kind"),
            ("/requested_tier", "Tier applied for"),
            ("/country", "Country"),
            ("/risk_score", "Risk"),
            ("/screening_decision", "Screening"),
            ("/idv_outcome", "IDV"),
            ("/submitted_at", "Submitted"),
            ("/claimed_by", "Claimed by"),
        ],
        "/id",
        |id| Some(CONSOLE.path(&format!("applications/{id}"))),
    );
    let statuses = ApplicationStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), s.as_str().replace('_', " ")))
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page_filter = form.clone();
    let page = QueuePage {
        chrome: staff.chrome("Review queue", ""),
        errors,
        filter: form,
        statuses,
        table,
        now: minute(now),
        next: next.map(|cursor| {
            let f = &page_filter;
            format!(
                "status={}&min_risk={}&country={}&older_than={}&cursor={}",
                f.status, f.min_risk, f.country, f.older_than, cursor
            )
        }),
    };
    Ok((status, render(&page)).into_response())
}

async fn case_file(
    State(kyc): State<Arc<Verification>>,
    State(metering): State<Arc<Metering>>,
    staff: Staff<CaseReaders>,
    Path(id): Path<Uuid>,
) -> Result<Response, WebError> {
    let page = case_page(
        &kyc,
        &metering,
        &staff,
        id,
        FormErrors::new(),
        DecisionForm::default(),
    )
    .await?;
    Ok(render(&page))
}

async fn case_page(
    kyc: &Verification,
    metering: &Metering,
    staff: &Staff<CaseReaders>,
    id: Uuid,
    errors: FormErrors,
    decision: DecisionForm,
) -> Result<CasePage, WebError> {
    let now = OffsetDateTime::now_utc();
    let case = kyc
        .case_file(&staff.caller.kyc(), id, now)
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    let parties = case
        .screening_parties
        .iter()
        .map(|p| {
            let best = p.best.clone().unwrap_or_default();
            let features = best
                .get("features")
                .and_then(|f| f.as_array())
                .cloned()
                .unwrap_or_default();
            Party {
                role: p.role.clone(),
                decision: p.decision.as_str().to_owned(),
                score: format!("{:.3}", p.score),
                matched: best
                    .get("matched_name")
                    .map(super::records::text)
                    .unwrap_or_default(),
                entry: best
                    .get("entry_key")
                    .map(super::records::text)
                    .unwrap_or_default(),
                features: Table::of(
                    &features,
                    &[
                        ("/name", "Feature"),
                        ("/value", "Value"),
                        ("/weight", "Weight"),
                        ("/note", "Why"),
                    ],
                    "/name",
                    |_| None,
                ),
            }
        })
        .collect();
    let approvals = case
        .approvals
        .iter()
        .map(|a| {
            let who = if a.staff_id == staff.caller.user.id {
                "you".to_owned()
            } else {
                format!("staff {}", a.staff_id)
            };
            format!("{} approved {} at {}", who, a.tier.as_str(), minute(a.at))
        })
        .collect();
    let history = kyc
        .store()
        .audit()
        .audit_page(&AuditFilter {
            since: None,
            subject: Some(format!("application:{id}")),
            action: None,
            after_seq: None,
            limit: HISTORY_LINES,
        })
        .await
        .map_err(|e| WebError::Unavailable(e.to_string()))?;
    let history = Table::of(
        &history,
        &[
            ("/at", "When"),
            ("/action", "What"),
            ("/actor", "Who"),
            ("/detail/reason", "Reason"),
        ],
        "/seq",
        |_| None,
    );
    let group = metering
        .store()
        .ledger()
        .group_of(case.customer_id)
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    let group = Table::of(
        group.as_ref().map_or(&[][..], |g| &g.members[..]),
        &[
            ("/customer_id", "Customer"),
            ("/via", "Linked by"),
            ("/joined_at", "Since"),
        ],
        "/customer_id",
        |_| None,
    );
    // The case file's read already passed the conflict guard for this customer.
    let flags = kyc
        .store()
        .incidents()
        .flags_of_customer(case.customer_id)
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    let flags = Table::of(
        &flags,
        &[
            ("/created_at", "Raised"),
            ("/partner", "Partner"),
            ("/indicator_type", "Matched on"),
            ("/context", "Partner's context"),
            ("/bundle_id", "Bundle"),
        ],
        "/id",
        |_| None,
    );
    let me = staff.caller.user.id;
    let app = &case.application;
    let label = |l: &str, v: String| Field {
        label: l.to_owned(),
        value: v,
    };
    let when = |t: Option<OffsetDateTime>| t.map_or_else(String::new, minute);
    let summary = vec![
        label("Status", app.status.as_str().replace('_', " ")),
        label("Kind", app.kind.as_str().to_owned()),
        label(
            "Tier applied for",
            app.requested_tier.clone().unwrap_or_default(),
        ),
        label(
            "Tier granted",
            app.granted_tier
                .as_ref()
                .map_or_else(String::new, |t| t.as_str().to_owned()),
        ),
        label(
            "Applicant",
            format!("{} (customer {})", case.customer_email, case.customer_id),
        ),
        label("Submitted", when(app.submitted_at)),
        label("Re-verification due", when(app.expires_at)),
        label(
            "Staff reason on record",
            app.reason.clone().unwrap_or_default(),
        ),
    ];
    let documents = app
        .documents
        .iter()
        .map(|d| Document {
            href: CONSOLE.path(&format!("documents/{}", d.id)),
            doc_type: d.doc_type.as_str().to_owned(),
            content_type: d.content_type.as_str().to_owned(),
            size_bytes: d.size_bytes,
            sha256: d.sha256.clone(),
            uploaded_at: minute(d.uploaded_at),
            image: d.content_type.as_str().starts_with("image/"),
        })
        .collect();
    let risk = Table::of(
        case.risk.as_ref().map_or(&[][..], |r| &r.factors[..]),
        &[
            ("/code", "Factor"),
            ("/points", "Points"),
            ("/explanation", "Why"),
        ],
        "/code",
        |_| None,
    );
    let claimed = match case.claimed_by {
        None => Claim::Nobody,
        Some(id) if id == me => Claim::You,
        Some(id) => Claim::Other(id),
    };
    let tiers = kyc
        .tier_names()
        .into_iter()
        .filter(|t| t != computegate_kyc::accounts::Tier::UNVERIFIED)
        .map(|t| (t.clone(), t.replace('_', " ")))
        .collect();
    Ok(CasePage {
        chrome: staff.chrome(format!("Case {id}"), ""),
        errors,
        id,
        customer_id: case.customer_id,
        organization_id: case.organization_id,
        summary,
        application: fields(&case.application.payload),
        identity_purged_at: case.application.identity_purged_at.map(minute),
        documents,
        screening: fields(&case.screening),
        parties,
        risk_score: case
            .risk
            .as_ref()
            .map_or_else(|| "not assessed".to_owned(), |r| r.score.to_string()),
        risk,
        idv: fields(&case.idv_outcome),
        approvals,
        claimed,
        history,
        group,
        flags,
        tiers,
        decision,
    })
}

async fn claim(
    State(kyc): State<Arc<Verification>>,
    staff: Staff,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    kyc.claim(&staff.caller.kyc(), id, OffsetDateTime::now_utc())
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    Ok(Redirect::to(&case_path(id)).into_response())
}

async fn unclaim(
    State(kyc): State<Arc<Verification>>,
    staff: Staff,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    kyc.unclaim(&staff.caller.kyc(), id, OffsetDateTime::now_utc())
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    Ok(Redirect::to(&case_path(id)).into_response())
}

async fn decide(
    State(kyc): State<Arc<Verification>>,
    State(metering): State<Arc<Metering>>,
    staff: Staff<CaseReaders>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> Result<Response, WebError> {
    let blank = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
    let manual = blank(&form.manual_evidence).map(|evidence| {
        vec![ManualCheckBody {
            evidence: Some(evidence),
            note: Some(form.manual_note.clone()),
        }]
    });
    let body = DecisionBody {
        action: blank(&form.action),
        tier: blank(&form.tier),
        reason: Some(form.reason.clone()),
        manual_checks: manual,
    };
    let outcome = match decision_request(&kyc, &body) {
        Ok(request) => kyc
            .decide(&staff.caller.kyc(), id, request, OffsetDateTime::now_utc())
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(_) => Ok(Redirect::to(&case_path(id)).into_response()),
        Err(e) => {
            let errors = rename_manual_fields(form_errors(e, "action")?);
            let page = case_page(&kyc, &metering, &staff, id, errors, form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}

/// The API names the manual check's fields `manual_checks[0].…`; the form has one of each.
fn rename_manual_fields(errors: FormErrors) -> FormErrors {
    FormErrors::from_pairs(
        errors
            .all()
            .iter()
            .map(|(field, problem)| {
                let field = match field.as_str() {
                    "manual_checks[0].evidence" | "manual_checks" => "manual_evidence",
                    "manual_checks[0].note" => "manual_note",
                    other => other,
                };
                (field.to_owned(), problem.clone())
            })
            .collect(),
    )
}

async fn override_screening(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> Result<Response, WebError> {
    let reason = super::reason(&form.reason)?;
    kyc.override_screening(&staff.caller.kyc(), id, &reason, OffsetDateTime::now_utc())
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    Ok(Redirect::to(&case_path(id)).into_response())
}

async fn customer_action(
    kyc: &Verification,
    staff: &Staff<Acting>,
    customer_id: Uuid,
    action: CustomerAction,
    form: ReasonForm,
) -> Result<Response, WebError> {
    let reason = super::reason(&form.reason)?;
    kyc.act_on_customer(
        &staff.caller.kyc(),
        customer_id,
        action,
        &reason,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|e| WebError::from(ApiError::from(e)))?;
    let back = form
        .application
        .map_or_else(|| CONSOLE.root.to_owned(), case_path);
    Ok(Redirect::to(&back).into_response())
}

async fn suspend(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> Result<Response, WebError> {
    customer_action(&kyc, &staff, id, CustomerAction::Suspend, form).await
}

async fn resume(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> Result<Response, WebError> {
    customer_action(&kyc, &staff, id, CustomerAction::Resume, form).await
}

async fn close(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<Acting>,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> Result<Response, WebError> {
    customer_action(&kyc, &staff, id, CustomerAction::Close, form).await
}

/// A document shown in the browser (images inline in the case file; PDFs open in a tab). The
/// download is audited by the service before the bytes leave, as in the staff API.
async fn document(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<CaseReaders>,
    Path(id): Path<Uuid>,
) -> Result<Response, WebError> {
    let doc = kyc
        .download(&staff.caller.kyc(), id, OffsetDateTime::now_utc())
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    let content_type = doc.meta.content_type.as_str();
    let ext = content_type.rsplit('/').next().unwrap_or("bin");
    let mut resp = doc.bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn organization(
    State(kyc): State<Arc<Verification>>,
    staff: Staff<CaseReaders>,
    Path(id): Path<Uuid>,
) -> Result<Response, WebError> {
    let view = kyc
        .organization_for_staff(&staff.caller.kyc(), id, OffsetDateTime::now_utc())
        .await
        .map_err(|e| WebError::from(ApiError::from(e)))?;
    let members = Table::of(
        &view.members,
        &[
            ("/email", "Email"),
            ("/role", "Role"),
            ("/status", "Status"),
            ("/kind", "Kind"),
            ("/joined_at", "Joined"),
            ("/customer_id", "Customer"),
        ],
        "/customer_id",
        |_| None,
    );
    let invitations = Table::of(
        &view.invitations,
        &[
            ("/email", "Invited"),
            ("/status", "Status"),
            ("/created_at", "Sent"),
            ("/expires_at", "Expires"),
        ],
        "/id",
        |_| None,
    );
    Ok(render(&OrganizationPage {
        chrome: staff.chrome(format!("Organization {}", view.name), ""),
        id,
        members,
        invitations,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_times_read_to_the_minute() {
        assert_eq!(waited(time::Duration::seconds(59)), "0 min");
        assert_eq!(waited(time::Duration::minutes(45)), "45 min");
        assert_eq!(waited(time::Duration::minutes(192)), "3 h 12 min");
        assert_eq!(waited(time::Duration::hours(53)), "2 d 5 h");
        assert_eq!(waited(time::Duration::seconds(-5)), "0 min");
    }
}
