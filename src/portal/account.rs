//! Signing up, in and out, and the overview: the account, the current tier with its caps, and
//! what each higher tier needs. Sign-up and sign-in are the identity service's own
//! (`Identity::sign_up` with its per-address throttle, `Identity::password_grant` with the login
//! throttle and counter); the session cookie takes the tokens the grant issued.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use computegate_kyc::accounts::{CustomerKind, CustomerStatus};
use computegate_kyc::login::LoginAttempt;
use computegate_kyc::verification::ApplicantKind;
use computegate_policy::{Evidence, Tier};
use serde::Deserialize;
use time::OffsetDateTime;

use super::application::current_application;
use super::display::flop;
use super::session::SignedIn;
use super::surface::{DoneQuery, SURFACE};
use crate::api::error::ApiError;
use crate::api::extract::Client;
use crate::identity::{AccountKind, Identity, SignUp};
use crate::verification::Verification;
use crate::verification::outstanding::tiers_above;
use crate::web::{Browser, Chrome, CsrfForm, FormErrors, TokenPair, WebError, render};

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage {
    chrome: Chrome,
    errors: FormErrors,
    email: String,
    kind: String,
    kinds: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    chrome: Chrome,
    errors: FormErrors,
    email: String,
    done: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    email: String,
    kind: &'static str,
    status: &'static str,
    active: bool,
    tier: TierView,
    next: Vec<TierView>,
    application: Option<(&'static str, String)>,
}

/// A tier as the overview shows it.
struct TierView {
    name: String,
    description: String,
    caps: Vec<(&'static str, String)>,
    needs: Vec<&'static str>,
}

#[derive(Deserialize)]
pub(crate) struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

// === handlers ===

/// `GET /signup`.
pub(crate) async fn signup_page(browser: Browser) -> Response {
    signup_form(&browser, FormErrors::new(), "", "")
}

/// `POST /signup`: creates the account and signs it in.
pub(crate) async fn signup(
    State(identity): State<Arc<Identity>>,
    browser: Browser,
    Client(client): Client,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let request = SignUp {
        email: form.email.trim(),
        password: &form.password,
        kind: &form.kind,
    };
    if let Err(e) = identity.sign_up(request, client.ip, now).await {
        let errors = match ApiError::from(e) {
            ApiError::Conflict(_) => {
                let mut errors = FormErrors::new();
                errors.add(
                    "email",
                    "An account with this email exists already. Sign in instead.",
                );
                errors
            }
            other => FormErrors::from_refusal(other)?,
        };
        let page = signup_form(&browser, errors, &form.email, &form.kind);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    sign_in(&identity, &browser, &form.email, &form.password, client.ip).await?;
    Ok(Redirect::to(&SURFACE.path("application")).into_response())
}

/// `GET /login`.
pub(crate) async fn login_page(browser: Browser, Query(q): Query<DoneQuery>) -> Response {
    render(&LoginPage {
        chrome: browser.chrome("Sign in"),
        errors: FormErrors::new(),
        email: String::new(),
        done: q.done.map(super::surface::Done::message),
    })
}

/// `POST /login`.
pub(crate) async fn login(
    State(identity): State<Arc<Identity>>,
    browser: Browser,
    Client(client): Client,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, WebError> {
    match sign_in(&identity, &browser, &form.email, &form.password, client.ip).await {
        Ok(()) => Ok(Redirect::to(&SURFACE.path("")).into_response()),
        Err(refusal) => {
            let problem = match refusal {
                ApiError::Unauthenticated(_) => "The email or the password is not right.".into(),
                ApiError::Forbidden(why) => format!("You cannot sign in: {why}."),
                ApiError::Throttled(after) => format!(
                    "Too many failed attempts. Wait {} seconds and try again.",
                    after.as_secs().max(1)
                ),
                other => return Err(other.into()),
            };
            let mut errors = FormErrors::new();
            errors.add("email", problem);
            let page = render(&LoginPage {
                chrome: browser.chrome("Sign in"),
                errors,
                email: form.email,
                done: None,
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// `POST /logout`: revokes the session's tokens (every replica hears) and forgets them.
pub(crate) async fn logout(
    State(identity): State<Arc<Identity>>,
    me: SignedIn,
    CsrfForm(_): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    if let Some(tokens) = me.browser.tokens() {
        identity
            .logout(
                me.caller.customer_id,
                &tokens.access,
                Some(&tokens.refresh),
                me.caller.client_ip,
                OffsetDateTime::now_utc(),
            )
            .await
            .map_err(ApiError::from)?;
    }
    me.browser.sign_out()?;
    Ok(super::surface::Done::SignedOut.redirect("login"))
}

/// `GET /`: the account, its tier and caps, and what the next tiers need.
pub(crate) async fn overview(
    State(kyc): State<Arc<Verification>>,
    me: SignedIn,
) -> Result<Response, WebError> {
    let policy = kyc.policy();
    let tier_name = me.account.tier.as_str();
    let tier = match policy.tier(tier_name) {
        Some(t) => tier_view(t, &[]),
        None => TierView {
            name: tier_name.to_owned(),
            description: "Not in the policy in force: no caps are shown.".into(),
            caps: Vec::new(),
            needs: Vec::new(),
        },
    };
    let kind = match me.account.kind {
        CustomerKind::Individual => ApplicantKind::Individual,
        CustomerKind::Organization => ApplicantKind::Organization,
    };
    let next = tiers_above(&policy, tier_name, kind)
        .into_iter()
        .map(|t| tier_view(t, &t.requires))
        .collect();
    let application = current_application(&kyc, &me)
        .await?
        .map(|a| (a.status.as_str(), a.requested_tier.unwrap_or_default()));
    render_ok(&OverviewPage {
        chrome: me.chrome("Your account", ""),
        email: me.account.email.clone(),
        kind: match me.account.kind {
            CustomerKind::Individual => "Individual",
            CustomerKind::Organization => "Organization",
        },
        status: me.account.status.as_str(),
        active: me.account.status == CustomerStatus::Active,
        tier,
        next,
        application,
    })
}

// === helpers ===

fn render_ok(page: &impl Template) -> Result<Response, WebError> {
    Ok(render(page))
}

fn signup_form(browser: &Browser, errors: FormErrors, email: &str, kind: &str) -> Response {
    render(&SignupPage {
        chrome: browser.chrome("Create an account"),
        errors,
        email: email.to_owned(),
        kind: kind.to_owned(),
        kinds: vec![
            (String::new(), "Choose".into()),
            ("individual".into(), "An individual".into()),
            (
                "organization".into(),
                "An organization (company, lab, university)".into(),
            ),
        ],
    })
}

/// The password grant, and the session cookie takes its tokens. Refusals are the JSON API's.
async fn sign_in(
    identity: &Identity,
    browser: &Browser,
    email: &str,
    password: &str,
    ip: std::net::IpAddr,
) -> Result<(), ApiError> {
    let attempt = LoginAttempt {
        email: email.trim(),
        password,
        client_ip: ip,
    };
    let tokens = identity
        .password_grant(AccountKind::Customer, attempt, OffsetDateTime::now_utc())
        .await?;
    browser
        .sign_in(TokenPair {
            access: tokens.access_token,
            refresh: tokens.refresh_token,
        })
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A tier's caps in words, and (for a tier above the current one) what it needs.
fn tier_view(t: &Tier, requires: &[Evidence]) -> TierView {
    let mut caps = Vec::new();
    let unlimited = || "no cap".to_owned();
    caps.push((
        "Accelerators per job",
        t.max_accelerators_per_job
            .map_or_else(unlimited, |n| n.to_string()),
    ));
    caps.push((
        "FLOP per training run",
        t.max_flop_per_run.map_or_else(unlimited, flop),
    ));
    caps.push((
        "FLOP per rolling window",
        t.max_flop_per_customer_window.map_or_else(unlimited, |f| {
            format!(
                "{} per {}",
                flop(f),
                computegate_policy::short_duration(t.window)
            )
        }),
    ));
    caps.push((
        "Jobs at once",
        t.max_concurrent_jobs
            .map_or_else(unlimited, |n| n.to_string()),
    ));
    let mut needs = vec!["An application for this tier, approved by compliance staff."];
    needs.extend(requires.iter().map(|e| match e {
        Evidence::IdvVerified => "A verified identity check by our identity-verification provider.",
        Evidence::CompliancePlan => "A compliance plan document uploaded with the application.",
    }));
    TierView {
        name: t.name.clone(),
        description: t.description.clone(),
        caps,
        needs,
    }
}
