//! The verification pages: the application form (individual, or organization with its
//! representative and beneficial owners), saving and handing it in, document upload, and the
//! application's status with exactly what is still missing. The work is the verification
//! service's (`create_application`, `replace_application`, `submit_application`, the store's
//! `add_document`, `outstanding`); the form's mapping is [`super::application_form`].

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use computegate_kyc::accounts::CustomerKind;
use computegate_kyc::verification::{
    ApplicantKind, ApplicationStatus, ApplicationView, DocumentType, DocumentUpload, tier_fits,
};
use computegate_policy::Evidence;
use time::OffsetDateTime;

use super::application_form::{self, Section};
use super::display::date;
use super::session::SignedIn;
use super::surface::Done;
use super::surface::DoneQuery;
use crate::api::applications::{multipart_error, read_part};
use crate::api::error::ApiError;
use crate::api::page::MAX_LIMIT;
use crate::verification::Verification;
use crate::verification::outstanding::Outstanding;
use crate::web::{Chrome, CsrfForm, FormErrors, WebError, render};

/// Longest `type` or `csrf` field of an upload, in bytes.
const MAX_SMALL_PART: usize = 256;

#[derive(Template)]
#[template(path = "portal/application.html")]
struct ApplicationPage {
    chrome: Chrome,
    done: Option<&'static str>,
    errors: FormErrors,
    upload_errors: FormErrors,
    status: Option<StatusView>,
    /// The form, when the application may be edited (or a new one started).
    sections: Vec<Section>,
    editable: bool,
    doc_types: Vec<(String, String)>,
}

/// The application's status, in words.
struct StatusView {
    status: &'static str,
    explanation: &'static str,
    tone: &'static str,
    reference: String,
    /// When retention withdrew the application's details (an application that ended long ago).
    identity_purged_at: Option<String>,
    requested_tier: String,
    reason: Option<String>,
    submitted_at: Option<String>,
    /// `(input id, label, problem)` of every field a submission would refuse.
    missing_fields: Vec<(String, String, String)>,
    missing_documents: Vec<String>,
    checks: Vec<String>,
    documents: Vec<(String, String, String)>,
}

// === handlers ===

/// `GET /application`.
pub(crate) async fn page(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let current = current_application(&kyc, &me).await?;
    let values = current
        .as_ref()
        .and_then(|a| a.payload.as_ref())
        .map(application_form::values)
        .unwrap_or_default();
    Ok(show(
        &kyc,
        &me,
        current.as_ref(),
        values,
        FormErrors::new(),
        FormErrors::new(),
        q.done,
    ))
}

/// `POST /application`: saves the form (a new draft, or the editable application replaced);
/// with `action=submit` also hands it in.
pub(crate) async fn save(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let current = current_application(&kyc, &me).await?;
    let submit = pairs.iter().any(|(k, v)| k == "action" && v == "submit");
    let refused = |errors: FormErrors| {
        let values = application_form::typed(&pairs);
        let page = show(
            &kyc,
            &me,
            current.as_ref(),
            values,
            errors,
            FormErrors::new(),
            None,
        );
        (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
    };
    let payload = match application_form::payload(applicant_kind(&me), &pairs) {
        Ok(p) => p,
        Err(errors) => return Ok(refused(errors)),
    };
    let caller = me.caller.kyc();
    let saved = match current.as_ref().filter(|a| is_editable(a.status)) {
        Some(app) => {
            kyc.replace_application(&caller, app.id, &payload, now)
                .await
        }
        None => kyc.create_application(&caller, &payload, now).await,
    };
    let saved = match saved {
        Ok(view) => view,
        Err(e) => return FormErrors::from_refusal(e).map(refused),
    };
    if !submit {
        return Ok(done(Done::Saved));
    }
    match kyc.submit_application(&caller, saved.id, now).await {
        Ok(_) => Ok(done(Done::Submitted)),
        Err(e) => FormErrors::from_refusal(e).map(refused),
    }
}

/// `POST /application/documents` (`multipart/form-data`: `csrf`, `type`, `file`).
pub(crate) async fn upload(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, WebError> {
    let mut multipart =
        multipart.map_err(|_| WebError::BadRequest("the upload form was not sent".into()))?;
    let (mut csrf, mut doc_type, mut file) = (String::new(), String::new(), None);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "csrf" => csrf = text(read_part(field, MAX_SMALL_PART, "csrf").await?),
            "type" => doc_type = text(read_part(field, MAX_SMALL_PART, "type").await?),
            "file" => {
                let name = field.file_name().map(str::to_owned);
                let declared = field.content_type().map(str::to_owned);
                let bytes = read_part(field, kyc.limits().max_bytes, "file").await?;
                file = Some((name, declared, bytes));
            }
            _ => {}
        }
    }
    // Nothing is looked at before the form is known to come from the page.
    me.browser.check_csrf(&csrf)?;
    let current = current_application(&kyc, &me).await?;
    let mut errors = FormErrors::new();
    let doc_type = doc_type.parse::<DocumentType>().ok();
    if doc_type.is_none() {
        errors.add("type", "Choose what the document is.");
    }
    match &file {
        Some((Some(name), Some(_), bytes)) if !name.is_empty() && !bytes.is_empty() => {}
        _ => errors.add("file", "Choose a file to upload."),
    }
    let app = current.as_ref().filter(|a| is_editable(a.status));
    if app.is_none() {
        errors.add(
            "file",
            "Save the application form first, then upload its documents.",
        );
    }
    let (Some(app), Some(doc_type), Some((filename, Some(declared), bytes)), true) =
        (app, doc_type, file, errors.is_empty())
    else {
        return Ok(upload_refused(&kyc, &me, current.as_ref(), errors));
    };
    let upload = DocumentUpload {
        doc_type,
        declared_content_type: declared,
        filename,
        bytes,
    };
    let stored = kyc
        .store()
        .verification()
        .add_document(
            kyc.master(),
            &me.caller.kyc(),
            app.id,
            &upload,
            kyc.limits(),
            OffsetDateTime::now_utc(),
        )
        .await;
    match stored.map_err(ApiError::from) {
        Ok(_) => Ok(done(Done::Uploaded)),
        // The file's own problems (type, size, content) belong next to the file input.
        Err(
            ApiError::UnsupportedMediaType(why)
            | ApiError::PayloadTooLarge(why)
            | ApiError::MalformedBody(why),
        ) => {
            let mut errors = FormErrors::new();
            errors.add("file", why);
            Ok(upload_refused(&kyc, &me, current.as_ref(), errors))
        }
        Err(e) => {
            let errors = FormErrors::from_refusal(e)?;
            Ok(upload_refused(&kyc, &me, current.as_ref(), errors))
        }
    }
}

// === helpers ===

fn done(what: Done) -> Response {
    what.redirect("application")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

fn upload_refused(
    kyc: &Verification,
    me: &SignedIn,
    current: Option<&ApplicationView>,
    errors: FormErrors,
) -> Response {
    let values = current
        .and_then(|a| a.payload.as_ref())
        .map(application_form::values)
        .unwrap_or_default();
    let page = show(kyc, me, current, values, FormErrors::new(), errors, None);
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// The customer's application that matters now: the open one, else the latest.
pub(crate) async fn current_application(
    kyc: &Verification,
    me: &SignedIn,
) -> Result<Option<ApplicationView>, WebError> {
    let apps = kyc
        .store()
        .verification()
        .customer_applications(kyc.master(), &me.caller.kyc(), None, MAX_LIMIT)
        .await
        .map_err(ApiError::from)?;
    let open = apps.iter().find(|a| a.status.is_open()).cloned();
    Ok(open.or_else(|| apps.into_iter().max_by_key(|a| a.created_at)))
}

fn applicant_kind(me: &SignedIn) -> ApplicantKind {
    match me.account.kind {
        CustomerKind::Individual => ApplicantKind::Individual,
        CustomerKind::Organization => ApplicantKind::Organization,
    }
}

/// Whether the customer may change the application now.
fn is_editable(status: ApplicationStatus) -> bool {
    matches!(
        status,
        ApplicationStatus::Draft | ApplicationStatus::NeedsInfo
    )
}

fn show(
    kyc: &Verification,
    me: &SignedIn,
    current: Option<&ApplicationView>,
    values: BTreeMap<String, String>,
    errors: FormErrors,
    upload_errors: FormErrors,
    done: Option<Done>,
) -> Response {
    let kind = applicant_kind(me);
    let policy = kyc.policy();
    let tiers: Vec<(String, String)> = (policy.tiers().iter())
        .filter(|t| tier_fits(kind, &t.name))
        .map(|t| (t.name.clone(), t.description.clone()))
        .collect();
    // A new application may be started when none is open (the first, or after a decision).
    let editable = current.is_none_or(|a| is_editable(a.status) || !a.status.is_open());
    let sections = application_form::sections(kind, &tiers, &values);
    let today = OffsetDateTime::now_utc().date();
    let status = current.map(|a| status_view(a, &kyc.outstanding(a, today), &sections));
    let doc_types = std::iter::once((String::new(), "Choose".to_owned()))
        .chain(
            (DocumentType::ALL.iter()).map(|t| (t.as_str().to_owned(), doc_label(*t).to_owned())),
        )
        .collect();
    render(&ApplicationPage {
        chrome: me.chrome("Verification", "application"),
        done: done.map(Done::message),
        errors,
        upload_errors,
        status,
        sections,
        editable,
        doc_types,
    })
}

fn status_view(app: &ApplicationView, out: &Outstanding, sections: &[Section]) -> StatusView {
    let (status, explanation, tone) = status_words(app.status);
    let label_of = |path: &str| -> (String, String) {
        let fields = sections
            .iter()
            .flat_map(|s| s.fields.iter().map(move |f| (s, f)));
        for (s, f) in fields {
            if f.name == path {
                return (
                    crate::web::forms::field_id(&f.name),
                    format!("{}: {}", s.legend, f.label),
                );
            }
            if f.name.starts_with(&format!("{path}.")) {
                // A whole group is missing (an address, an identity document): name the group.
                let group = path.rsplit('.').next().unwrap_or(path);
                let label = format!("{}: {}", s.legend, humanize(group));
                return (crate::web::forms::field_id(&f.name), label);
            }
        }
        (String::new(), path.to_owned())
    };
    StatusView {
        status,
        explanation,
        tone,
        reference: app.id.to_string(),
        identity_purged_at: app.identity_purged_at.map(date),
        requested_tier: app
            .requested_tier
            .clone()
            .unwrap_or_else(|| "not chosen yet".into()),
        reason: app.reason.clone(),
        submitted_at: app.submitted_at.map(date),
        missing_fields: (out.fields.iter())
            .map(|e| {
                let (id, label) = label_of(&e.field);
                (id, label, e.problem.clone())
            })
            .collect(),
        missing_documents: out
            .documents
            .iter()
            .map(|e| evidence_words(*e).to_owned())
            .collect(),
        checks: out
            .checks
            .iter()
            .map(|e| evidence_words(*e).to_owned())
            .collect(),
        documents: (app.documents.iter())
            .map(|d| {
                let size = format!("{} KiB", d.size_bytes.div_ceil(1024));
                (doc_label(d.doc_type).to_owned(), size, date(d.uploaded_at))
            })
            .collect(),
    }
}

/// The status in words: name, what it means for the customer, and its tone.
fn status_words(s: ApplicationStatus) -> (&'static str, &'static str, &'static str) {
    match s {
        ApplicationStatus::Draft => (
            "Draft",
            "Not handed in yet. Complete what is listed below, then choose “Save and submit”.",
            "warn",
        ),
        ApplicationStatus::Submitted | ApplicationStatus::Screening => (
            "Submitted",
            "Handed in and being screened. Nothing is needed from you now.",
            "ok",
        ),
        ApplicationStatus::PendingReview => (
            "Waiting for review",
            "A compliance reviewer will decide. Nothing is needed from you now.",
            "ok",
        ),
        ApplicationStatus::NeedsInfo => (
            "More information needed",
            "A reviewer asked for more (see their reason). Change the form or upload documents, then submit again.",
            "warn",
        ),
        ApplicationStatus::Approved => ("Approved", "Your tier has been granted.", "ok"),
        ApplicationStatus::Rejected => (
            "Rejected",
            "The application was refused. You may start a new one.",
            "danger",
        ),
        ApplicationStatus::Suspended => (
            "Suspended",
            "The approval is suspended by compliance staff.",
            "danger",
        ),
        ApplicationStatus::Expired => (
            "Expired",
            "The approval lapsed or was replaced; re-verify with a new application.",
            "warn",
        ),
        ApplicationStatus::Closed => ("Closed", "The application is closed.", "danger"),
    }
}

/// A payload key in words: `id_document` → `Id document`, `beneficial_owners[0]` → `Beneficial
/// owners`.
fn humanize(key: &str) -> String {
    let key = key.split('[').next().unwrap_or(key).replace('_', " ");
    let mut chars = key.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn evidence_words(e: Evidence) -> &'static str {
    match e {
        Evidence::CompliancePlan => {
            "A compliance plan document (upload it below as “Compliance plan”)."
        }
        Evidence::IdvVerified => {
            "A verified identity check of the applicant (or of the organization's representative) by our identity-verification provider; the provider records its outcome on this application under its reference (shown above)."
        }
    }
}

fn doc_label(t: DocumentType) -> &'static str {
    match t {
        DocumentType::Passport => "Passport",
        DocumentType::NationalId => "National identity card",
        DocumentType::DrivingLicence => "Driving licence",
        DocumentType::ProofOfAddress => "Proof of address",
        DocumentType::RegistrationCertificate => "Company registration certificate",
        DocumentType::OwnershipRegister => "Register of beneficial owners",
        DocumentType::CompliancePlan => "Compliance plan",
        DocumentType::Other => "Other document",
    }
}
