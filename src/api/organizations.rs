//! Organization membership over HTTP. Customer API (public listener): the caller's organization
//! and the invitations addressed to the caller (access token, or an API key with `read`); the
//! owner's invitations and accepting one (access token only, like key management). Staff API (admin listener): an organization's members, and
//! removing one (with a reason; through the conflict-of-interest guard).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use computegate_gateway::scope::Scope;
use computegate_kyc::accounts::membership::ReceivedInvitation;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{
    Acting, CaseReaders, CustomerCaller, CustomerSession, JsonBody, PathId, PathIds, QueryParams,
    StaffCaller, no_store,
};
use super::page::{PageQuery, PageRequest};
use super::review::{ReasonBody, reason_of};
use super::state::ApiState;
use crate::verification::Verification;

/// Whom to invite.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    email: String,
}

/// `{"token"}`: the acceptance token the owner was given with the invitation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AcceptRequest {
    token: String,
}

/// A page of invitations addressed to the caller.
#[derive(Serialize, ToSchema)]
struct InvitationList {
    invitations: Vec<ReceivedInvitation>,
    /// The next page's cursor; `null` on the last page.
    next: Option<String>,
}

/// The organization joined.
#[derive(Serialize, ToSchema)]
struct Joined {
    organization_id: Uuid,
    /// Always `member`.
    role: &'static str,
}

/// A member removed.
#[derive(Serialize, ToSchema)]
struct Removed {
    organization_id: Uuid,
    customer_id: Uuid,
    removed: bool,
}

/// The customer routes.
pub(crate) fn customer_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(mine))
        .routes(routes!(invite, received))
        .routes(routes!(revoke))
        .routes(routes!(accept))
        .routes(routes!(leave))
}

/// The staff routes.
pub(crate) fn staff_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(staff_view))
        .routes(routes!(staff_remove))
}

/// The caller's organization: name, members (email, tier, role) and, for its owner, the
/// pending invitations; 404 outside any organization.
#[utoipa::path(
    get,
    path = "/computegate/v1/organization",
    operation_id = "get_organization",
    tag = "organizations",
    responses((status = 200, description = "The organization", body = Object)),
    security(("customer" = []))
)]
async fn mine(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let view = kyc
        .organization_of(caller.customer_id, OffsetDateTime::now_utc())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(no_store(Json(view)))
}

/// `{"email"}` → 201 the invitation with its one-time acceptance token (owner only).
#[utoipa::path(
    post,
    path = "/computegate/v1/organization/invitations",
    operation_id = "invite_member",
    tag = "organizations",
    request_body = InviteRequest,
    responses((status = 201, description = "The invitation", body = Object)),
    security(("customer" = []))
)]
async fn invite(
    State(kyc): State<Arc<Verification>>,
    session: CustomerSession,
    JsonBody(req): JsonBody<InviteRequest>,
) -> Result<Response, ApiError> {
    let invitation = kyc
        .invite_member(&session.caller.kyc(), &req.email, OffsetDateTime::now_utc())
        .await?;
    Ok((StatusCode::CREATED, no_store(Json(invitation))).into_response())
}

/// A page of the pending invitations addressed to the caller's email, oldest first.
#[utoipa::path(
    get,
    path = "/computegate/v1/organization/invitations",
    operation_id = "list_received_invitations",
    tag = "organizations",
    params(PageQuery),
    responses((status = 200, body = InvitationList)),
    security(("customer" = []))
)]
async fn received(
    State(kyc): State<Arc<Verification>>,
    caller: CustomerCaller,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let now = OffsetDateTime::now_utc();
    let invitations = kyc
        .invitations_received(caller.customer_id, now, page.after, page.fetch())
        .await?;
    let page = page.page(invitations, |i| (i.created_at, i.id));
    Ok(no_store(Json(InvitationList {
        invitations: page.items,
        next: page.next,
    })))
}

/// Revokes a pending invitation of the caller's organization (owner only) → 204.
#[utoipa::path(
    delete,
    path = "/computegate/v1/organization/invitations/{id}",
    operation_id = "revoke_invitation",
    tag = "organizations",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked")),
    security(("customer" = []))
)]
async fn revoke(
    State(kyc): State<Arc<Verification>>,
    session: CustomerSession,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    kyc.revoke_invitation(&session.caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"token"}`: accepts an invitation addressed to the caller →
/// `{"organization_id","role":"member"}`.
#[utoipa::path(
    post,
    path = "/computegate/v1/organization/invitations/{id}/accept",
    operation_id = "accept_invitation",
    tag = "organizations",
    params(("id" = Uuid, Path)),
    request_body = AcceptRequest,
    responses((status = 200, body = Joined)),
    security(("customer" = []))
)]
async fn accept(
    State(kyc): State<Arc<Verification>>,
    session: CustomerSession,
    PathId(id): PathId,
    JsonBody(req): JsonBody<AcceptRequest>,
) -> Result<Response, ApiError> {
    let now = OffsetDateTime::now_utc();
    let organization = kyc
        .accept_invitation(&session.caller.kyc(), id, &req.token, now)
        .await?;
    Ok(Json(Joined {
        organization_id: organization,
        role: "member",
    })
    .into_response())
}

/// The caller leaves their organization (members only; the owner cannot) → 204.
#[utoipa::path(
    post,
    path = "/computegate/v1/organization/leave",
    operation_id = "leave_organization",
    tag = "organizations",
    responses((status = 204, description = "Left")),
    security(("customer" = []))
)]
async fn leave(
    State(kyc): State<Arc<Verification>>,
    session: CustomerSession,
) -> Result<Response, ApiError> {
    kyc.leave_organization(&session.caller.kyc(), OffsetDateTime::now_utc())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An organization's members and pending invitations; the read is audited.
#[utoipa::path(
    get,
    path = "/staff/v1/organizations/{id}",
    operation_id = "get_organization",
    tag = "organizations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The organization", body = Object)),
    security(("staff" = []))
)]
async fn staff_view(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<CaseReaders>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let view = kyc
        .organization_for_staff(&caller.kyc(), id, OffsetDateTime::now_utc())
        .await?;
    Ok(no_store(Json(view)))
}

/// `{"reason"}`: removes a member (not the owner); the data plane hears at once.
#[utoipa::path(
    post,
    path = "/staff/v1/organizations/{id}/members/{customer_id}/remove",
    operation_id = "remove_member",
    tag = "organizations",
    params(("id" = Uuid, Path), ("customer_id" = Uuid, Path)),
    request_body = ReasonBody,
    responses((status = 200, body = Removed)),
    security(("staff" = []))
)]
async fn staff_remove(
    State(kyc): State<Arc<Verification>>,
    caller: StaffCaller<Acting>,
    PathIds(id, customer_id): PathIds,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Response, ApiError> {
    let reason = reason_of(body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    kyc.remove_member(
        &caller.kyc(),
        id,
        customer_id,
        &reason,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(Removed {
        organization_id: id,
        customer_id,
        removed: true,
    })
    .into_response())
}

#[cfg(test)]
mod tests;
