//! The extractors every control-plane handler starts with, so that a handler's arguments say
//! who may call it: [`CustomerCaller`] (bearer token or API key, checked by the data plane's
//! verifier and caches), [`CustomerSession`] (an access token only), [`StaffCaller`] with a typed
//! role requirement ([`AnyStaff`], [`Acting`], [`AuditReaders`]), [`PathId`] (a UUID in the path;
//! anything else is simply not found), [`JsonBody`] and [`QueryParams`] (rejections as problem
//! documents), and [`Client`] (the connecting address the listener saw). Plus [`no_store`], the one
//! way an answer with personal data or secrets is marked uncacheable.
//!
//! Extractors run in argument order, so a handler lists the caller first: a request without a
//! credential is refused 401 before its path or body is looked at.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, RequestPartsExt};
use computegate_gateway::auth::{AuthError, AuthMethod, Principal, bearer};
use computegate_gateway::forward::ClientFacts;
use computegate_kyc::accounts::{Actor, StaffRole, StaffUser};
use computegate_kyc::verification;
use uuid::Uuid;

use super::error::ApiError;
use crate::identity::Identity;

/// The connecting client as seen by the listener (access log, throttling, audit actor).
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientFacts);

/// A customer calling with an access token or an API key.
#[derive(Debug, Clone)]
pub struct CustomerCaller {
    /// The verified principal (status, tier, organization, how it authenticated).
    pub principal: Principal,
    /// The customer's id.
    pub customer_id: Uuid,
    /// The connecting address.
    pub client_ip: IpAddr,
}

/// A customer calling with an access token from the token endpoint, never an API key: key
/// management and logout need a signed-in session, so that a leaked key cannot mint keys that
/// outlive its own revocation.
#[derive(Debug, Clone)]
pub struct CustomerSession {
    /// The caller.
    pub caller: CustomerCaller,
    /// The access token itself (logout revokes it).
    pub token: String,
}

/// Which staff roles a route takes, as a type: `StaffCaller<Acting>` cannot be built for an
/// auditor.
pub trait StaffRoles: Send + Sync + 'static {
    /// Whether `role` may call the route.
    fn allows(role: StaffRole) -> bool;
    /// The 403 detail for the other roles.
    const REFUSAL: &'static str;
}

/// Every staff role (the store checks finer rules per operation and audits its refusals).
#[derive(Debug)]
pub struct AnyStaff;

/// Roles that change things: reviewer, senior reviewer, admin (auditors read only).
#[derive(Debug)]
pub struct Acting;

/// Roles that read the audit chain: auditor, admin.
#[derive(Debug)]
pub struct AuditReaders;

/// Roles that read customers' personal data (case files, organization members): reviewer,
/// senior reviewer, auditor.
#[derive(Debug)]
pub struct CaseReaders;

/// A staff member calling with a staff bearer token, in one of the roles `R` allows.
#[derive(Debug)]
pub struct StaffCaller<R: StaffRoles = AnyStaff> {
    /// The staff user as stored now (a disabled user or changed role takes effect at once).
    pub user: StaffUser,
    /// The connecting address.
    pub client_ip: IpAddr,
    roles: PhantomData<R>,
}

/// A resource id from the path: anything that is not a UUID is simply not found (404).
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub Uuid);

/// Two resource ids from the path (a parent and a child), each parsed like [`PathId`].
#[derive(Debug, Clone, Copy)]
pub struct PathIds(pub Uuid, pub Uuid);

/// A JSON body; a body that is not the endpoint's JSON is a 400 problem document.
#[derive(Debug, FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// Query parameters; a query that does not parse is a 422 problem naming the query.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

// === impl CustomerCaller ===

impl CustomerCaller {
    /// Refuses an API key without `scope` (an access token carries every scope).
    pub fn require(&self, scope: computegate_gateway::scope::Scope) -> Result<(), ApiError> {
        if self.principal.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::ScopeMissing(scope))
        }
    }

    /// The caller in the verification store's terms.
    pub fn kyc(&self) -> verification::CustomerCaller {
        verification::CustomerCaller {
            customer_id: self.customer_id,
            client_ip: Some(self.client_ip),
        }
    }
}

impl<S> FromRequestParts<S> for CustomerCaller
where
    Arc<Identity>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Client(client) = client(parts)?;
        let identity = Arc::<Identity>::from_ref(state);
        let token = bearer(&parts.headers)?;
        let principal = identity.authenticate_customer(token, client.ip).await?;
        let customer_id = Uuid::parse_str(&principal.customer_id)
            .map_err(|_| AuthError::Invalid("unknown account"))?;
        Ok(CustomerCaller {
            principal,
            customer_id,
            client_ip: client.ip,
        })
    }
}

impl<S> FromRequestParts<S> for CustomerSession
where
    Arc<Identity>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = CustomerCaller::from_request_parts(parts, state).await?;
        if caller.principal.method != AuthMethod::Jwt {
            return Err(ApiError::Forbidden(
                "this needs an access token from /computegate/v1/auth/token, not an API key",
            ));
        }
        // The caller was just authenticated with this very header.
        let token = bearer(&parts.headers)?.to_owned();
        Ok(CustomerSession { caller, token })
    }
}

// === impl StaffRoles ===

impl StaffRoles for AnyStaff {
    fn allows(_: StaffRole) -> bool {
        true
    }
    const REFUSAL: &'static str = "staff only";
}

impl StaffRoles for Acting {
    fn allows(role: StaffRole) -> bool {
        match role {
            StaffRole::Reviewer | StaffRole::SeniorReviewer | StaffRole::Admin => true,
            StaffRole::Auditor => false,
        }
    }
    const REFUSAL: &'static str = "auditors have read-only access";
}

impl StaffRoles for AuditReaders {
    fn allows(role: StaffRole) -> bool {
        match role {
            StaffRole::Auditor | StaffRole::Admin => true,
            StaffRole::Reviewer | StaffRole::SeniorReviewer => false,
        }
    }
    const REFUSAL: &'static str = "the audit chain is for auditors and admins";
}

impl StaffRoles for CaseReaders {
    fn allows(role: StaffRole) -> bool {
        match role {
            StaffRole::Reviewer | StaffRole::SeniorReviewer | StaffRole::Auditor => true,
            StaffRole::Admin => false,
        }
    }
    const REFUSAL: &'static str = "customers' personal data is for reviewers and auditors";
}

// === impl StaffCaller ===

impl<R: StaffRoles> StaffCaller<R> {
    /// The caller in the verification store's terms.
    pub fn kyc(&self) -> verification::StaffCaller {
        verification::StaffCaller {
            staff_id: self.user.id,
            // Staff accounts carry no organization ties in the store; conflict checks fall back
            // to the staff member's email against the applicant's.
            organization_ids: Vec::new(),
            client_ip: Some(self.client_ip),
        }
    }

    /// The caller as the audit chain records it.
    pub fn actor(&self) -> Actor {
        Actor::staff(self.user.id, Some(self.client_ip))
    }
}

impl<R: StaffRoles> StaffCaller<R> {
    /// The caller `user` at `client_ip`, when its role is one of `R`'s (the console builds its
    /// callers from a session cookie with this, the staff API from a bearer token).
    pub fn new(user: StaffUser, client_ip: IpAddr) -> Result<Self, ApiError> {
        if !R::allows(user.role) {
            return Err(ApiError::Forbidden(R::REFUSAL));
        }
        Ok(StaffCaller {
            user,
            client_ip,
            roles: PhantomData,
        })
    }
}

impl<S, R> FromRequestParts<S> for StaffCaller<R>
where
    Arc<Identity>: FromRef<S>,
    S: Send + Sync,
    R: StaffRoles,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Client(client) = client(parts)?;
        let identity = Arc::<Identity>::from_ref(state);
        let token = bearer(&parts.headers)?;
        let user = identity.authenticate_staff(token).await?;
        StaffCaller::new(user, client.ip)
    }
}

// === impl PathId ===

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Path(text) = parts
            .extract::<Path<String>>()
            .await
            .map_err(|_| ApiError::NotFound)?;
        Uuid::parse_str(&text)
            .map(PathId)
            .map_err(|_| ApiError::NotFound)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Path((a, b)) = parts
            .extract::<Path<(String, String)>>()
            .await
            .map_err(|_| ApiError::NotFound)?;
        match (Uuid::parse_str(&a), Uuid::parse_str(&b)) {
            (Ok(a), Ok(b)) => Ok(PathIds(a, b)),
            _ => Err(ApiError::NotFound),
        }
    }
}

// === impl Client ===

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        client(parts)
    }
}

/// The client facts `RouterPlane` attaches to every request.
fn client(parts: &Parts) -> Result<Client, ApiError> {
    parts
        .extensions
        .get::<Client>()
        .copied()
        .ok_or_else(|| ApiError::Internal("the listener attached no client facts".into()))
}

/// Marks an answer uncacheable (`Cache-Control: no-store`): personal data, tokens, secrets.
pub fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
