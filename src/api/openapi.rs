//! The OpenAPI 3.1 documents of the two control-plane APIs, generated from the handlers' own
//! `#[utoipa::path]` annotations and the types they take and answer (`utoipa`'s derives), and
//! served by the routers they describe: `GET /computegate/openapi.json` (customer API, public
//! listener) and `GET /staff/v1/openapi.json` (staff API, admin listener).
//!
//! Every route is added through `utoipa_axum`'s `routes!`, which registers the handler with the
//! router and its operation with the document in one step, so a route cannot be served without
//! being documented; the tests below check the other direction against the real router (every
//! documented path and method is served, and no other method is).
//!
//! Neither document needs a credential: they describe endpoints, not data, and a client has to
//! read the customer one before it has a token. The staff one sits on the admin listener, which
//! a deployment keeps off the public network anyway; it names no staff user and no secret.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response as ResponseDoc, ResponseBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use super::state::ApiState;

/// Security scheme of customer operations: an access token or an API key.
pub const CUSTOMER_AUTH: &str = "customer";
/// Security scheme of staff operations: a staff access token.
pub const STAFF_AUTH: &str = "staff";

/// An RFC 9457 problem document: every error either API answers, as
/// `application/problem+json`. Problems may carry more members (`errors`, `retry_after`, …).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only; answers are built by `ApiError`")]
pub struct Problem {
    /// `https://computegate.dev/problems/<slug>`: stable, for clients to key on.
    r#type: String,
    /// Short summary of the problem type.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What happened, in words.
    detail: String,
}

/// The customer API's document, before its routes are added.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Computegate customer API",
        description = "Sign-up, tokens, API keys, verification (KYC/KYB) applications and \
            documents, usage, organizations. Public listener. Lists page with `limit` and \
            `cursor` and answer `next` (null on the last page); timestamps are RFC 3339; every \
            error is an RFC 9457 problem document.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&CustomerSecurity),
    tags(
        (name = "account", description = "Sign-up, tokens, the caller's record, API keys"),
        (name = "verification", description = "Verification applications and documents"),
        (name = "usage", description = "Usage, jobs and usage events"),
        (name = "organizations", description = "Organization membership"),
        (name = "resellers", description = "A reseller's end customers"),
        (name = "meta", description = "This document"),
    )
)]
pub(crate) struct CustomerDoc;

/// The staff API's document, before its routes are added.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Computegate staff API",
        description = "Staff sign-in, the review queue and decisions, customers, the audit \
            chain, compute metering (runs, reports, job reviews, groups), organizations, incidents. \
            Admin listener. Lists page with `limit` and `cursor` and answer `next` (null on the \
            last page); timestamps are RFC 3339; every error is an RFC 9457 problem document.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&StaffSecurity),
    tags(
        (name = "staff", description = "Staff sign-in"),
        (name = "review", description = "Review queue, case files, decisions, customers, audit"),
        (name = "metering", description = "Jobs, runs, reports, job reviews, groups"),
        (name = "organizations", description = "Organization membership"),
        (name = "incidents", description = "Abuse incidents, STIX export, partners' review flags"),
        (name = "resellers", description = "Resellers: marking, the flagged queue, suspension"),
        (name = "meta", description = "This document"),
    )
)]
pub(crate) struct StaffDoc;

/// A rendered document, handed to its route through a request extension (the document is only
/// complete once every route is in, after the router is built).
#[derive(Clone)]
pub(crate) struct Rendered(Bytes);

/// The customer API's security scheme.
struct CustomerSecurity;

/// The staff API's security scheme.
struct StaffSecurity;

// === impl CustomerSecurity, StaffSecurity ===

impl Modify for CustomerSecurity {
    fn modify(&self, doc: &mut Document) {
        add_bearer(
            doc,
            CUSTOMER_AUTH,
            "An access token from /computegate/v1/auth/token, or an API key (cg_…)",
        );
    }
}

impl Modify for StaffSecurity {
    fn modify(&self, doc: &mut Document) {
        add_bearer(
            doc,
            STAFF_AUTH,
            "A staff access token from /staff/v1/auth/token",
        );
    }
}

/// Adds a bearer security scheme named `name`.
fn add_bearer(doc: &mut Document, name: &str, description: &str) {
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.description = Some(description.to_owned());
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .security_schemes
        .insert(name.to_owned(), SecurityScheme::Http(http).into());
}

// === impl Rendered ===

impl Rendered {
    /// Completes `doc` (every operation may answer a problem document; every response has the
    /// description OpenAPI 3.1 requires) and renders it.
    pub(crate) fn new(mut doc: Document) -> Rendered {
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                add_problem_responses(op);
                describe_responses(op);
            }
        }
        // Serializing a document built from our own types cannot fail; an empty body would
        // show at once in the tests.
        Rendered(serde_json::to_vec(&doc).unwrap_or_default().into())
    }
}

/// `4XX` and `5XX` answers, each a problem document, unless the operation names its own.
fn add_problem_responses(op: &mut Operation) {
    let problem = || -> RefOr<ResponseDoc> {
        ResponseBuilder::new()
            .description("A problem document (RFC 9457)")
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
            .into()
    };
    for range in ["4XX", "5XX"] {
        op.responses
            .responses
            .entry(range.to_owned())
            .or_insert_with(problem);
    }
}

/// Gives a response the annotation left undescribed its status's reason phrase ("OK",
/// "Created", …): OpenAPI 3.1 requires a description on every response.
fn describe_responses(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            let reason = (status.parse::<u16>().ok())
                .and_then(|code| http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason());
            response.description = reason.unwrap_or("The answer").to_owned();
        }
    }
}

/// Gives a route's methods a body limit (`DefaultBodyLimit`): past it, 413.
pub(crate) fn limited(
    (schemas, paths, methods): UtoipaMethodRouter<ApiState>,
    max_bytes: usize,
) -> UtoipaMethodRouter<ApiState> {
    (
        schemas,
        paths,
        methods.layer(DefaultBodyLimit::max(max_bytes)),
    )
}

/// This document.
#[utoipa::path(
    get,
    path = "/computegate/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    responses((status = 200, description = "The customer API's OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn customer_document(Extension(doc): Extension<Rendered>) -> Response {
    serve(doc)
}

/// This document.
#[utoipa::path(
    get,
    path = "/staff/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    responses((status = 200, description = "The staff API's OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn staff_document(Extension(doc): Extension<Rendered>) -> Response {
    serve(doc)
}

fn serve(doc: Rendered) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        doc.0,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
