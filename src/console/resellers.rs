//! The resellers page: every reseller with its standing, the flagged ones (the pass-through
//! rule found too many of their jobs refused for their end customer) first — the review queue
//! the staff API serves as `GET /staff/v1/resellers?status=flagged`. Suspending and resuming
//! are staff API actions (docs/resellers.md).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use computegate_kyc::verification::ResellerStatus;

use super::Staff;
use super::records::Table;
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::verification::Verification;
use crate::web::{Chrome, WebError, render};

/// Rows per standing.
const PAGE_ROWS: u32 = 200;

#[derive(Template)]
#[template(path = "console/resellers.html")]
struct ResellersPage {
    chrome: Chrome,
    flagged: Table,
    others: Table,
}

/// The resellers route.
pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/resellers", get(resellers))
}

async fn resellers(
    State(kyc): State<Arc<Verification>>,
    staff: Staff,
) -> Result<Response, WebError> {
    let page = |status| kyc.resellers(Some(status), None, PAGE_ROWS);
    let flagged = page(ResellerStatus::Flagged)
        .await
        .map_err(ApiError::from)?;
    let mut others = page(ResellerStatus::Suspended)
        .await
        .map_err(ApiError::from)?;
    others.extend(page(ResellerStatus::Active).await.map_err(ApiError::from)?);
    let columns = [
        ("/name", "Organization"),
        ("/organization_id", "Id"),
        ("/status", "Standing"),
        ("/refused_share", "Refused share"),
        ("/flagged_at", "Flagged"),
        ("/status_at", "Since"),
    ];
    let link = |id: &str| Some(format!("/console/organizations/{id}"));
    Ok(render(&ResellersPage {
        chrome: staff.chrome("Resellers", "resellers"),
        flagged: Table::of(&flagged, &columns, "/organization_id", link),
        others: Table::of(&others, &columns, "/organization_id", link),
    }))
}
