//! The portal's pages and forms through the customer router, without sockets: the real
//! services over SQLite (`api::test_support`), a small cookie-keeping client, and checks of what
//! every page must carry (CSP, no-store, the cookie's attributes, CSRF refusals, escaping).

use http::{Method, StatusCode, header};

use crate::api::test_support::{Answer, Api, Call, PASSWORD, data, get};

/// A browser: one session cookie, kept across requests.
struct Tab<'a> {
    api: &'a Api,
    cookie: Option<String>,
}

const ROOT: &str = "/computegate/account";
/// Text typed into free-text fields to check escaping.
const EVIL: &str = "<script>alert('x')</script><b>bold</b>";
/// How [`EVIL`] appears when escaped by askama.
const EVIL_ESCAPED: &str =
    "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#60;b&#62;bold&#60;/b&#62;";

// === impl Tab ===

impl<'a> Tab<'a> {
    fn new(api: &'a Api) -> Self {
        Tab { api, cookie: None }
    }

    async fn send(&mut self, mut call: Call) -> Answer {
        if let Some(c) = &self.cookie {
            call = call.header(header::COOKIE, c);
        }
        let answer = self.api.customer(call).await;
        if let Some(set) = answer.headers.get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(get(&format!("{ROOT}{path}"))).await
    }

    /// Posts `fields` with the CSRF token of the page at `form_page`.
    async fn submit(&mut self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(form_page).await;
        let token = csrf_of(&text(&page));
        let mut all: Vec<(&str, &str)> = vec![("csrf", &token)];
        all.extend_from_slice(fields);
        self.post_raw(action, &all).await
    }

    async fn post_raw(&mut self, action: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let call = Call::new(Method::POST, &format!("{ROOT}{action}"))
            .raw("application/x-www-form-urlencoded", body.into_bytes());
        self.send(call).await
    }

    async fn sign_up(&mut self, kind: &str) -> String {
        let email = format!("p-{}@portal.example", uuid::Uuid::now_v7().simple());
        let a = self
            .submit(
                "/signup",
                "/signup",
                &[("email", &email), ("password", PASSWORD), ("kind", kind)],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
        assert_eq!(a.headers[header::LOCATION], format!("{ROOT}/application"));
        email
    }
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.bytes).into_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// What every portal page carries.
#[track_caller]
fn assert_page(a: &Answer) {
    let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(a.no_store(), "{:?}", a.headers);
    assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn sign_up_sets_a_strict_session_cookie_and_lands_on_the_application() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    let page = tab.get("/signup").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_page(&page);
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in [
        "cg_account=",
        "; Path=/computegate/account",
        "; HttpOnly",
        "; SameSite=Strict",
    ] {
        assert!(set.contains(attr), "{attr}: {set}");
    }
    let email = tab.sign_up("organization").await;
    let app = tab.get("/application").await;
    assert_eq!(app.status, StatusCode::OK);
    assert_page(&app);
    assert!(text(&app).contains(&email), "signed in as the new account");
    assert!(text(&app).contains("Beneficial owner 1"));
}

#[tokio::test]
async fn every_form_refuses_a_missing_or_foreign_csrf_token() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    tab.sign_up("individual").await;
    let mut other = Tab::new(&api);
    let foreign = csrf_of(&text(&other.get("/login").await));
    for action in [
        "/signup",
        "/login",
        "/logout",
        "/application",
        "/keys",
        "/keys/revoke",
        "/organization/invite",
        "/organization/revoke",
        "/organization/accept",
    ] {
        for token in [None, Some(foreign.as_str())] {
            let mut fields = vec![("email", "x@example.com"), ("name", "k")];
            if let Some(t) = token {
                fields.push(("csrf", t));
            }
            let a = tab.post_raw(action, &fields).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{action} {token:?}");
            assert_page(&a);
            assert!(text(&a).contains("The form has expired"), "{action}");
        }
    }
    // Nothing happened: no key was created.
    assert!(text(&tab.get("/keys").await).contains("You have no API keys"));
}

#[tokio::test]
async fn pages_need_a_session_and_unknown_pages_are_html() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    for path in ["", "/application", "/keys", "/organization", "/usage"] {
        let a = tab.get(path).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.headers[header::LOCATION], format!("{ROOT}/login"));
    }
    let a = tab.get("/").await;
    assert_eq!(
        a.status,
        StatusCode::PERMANENT_REDIRECT,
        "the root with a slash"
    );
    assert_eq!(a.headers[header::LOCATION], ROOT);
    let a = tab.get("/no-such-page").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_page(&a);
    assert!(text(&a).contains("Page not found"));
    // The JSON API next door still answers problem documents.
    api.customer(get("/computegate/v1/no-such"))
        .await
        .problem(404, "not-found");
    // A junk cookie is a fresh anonymous session, not an error.
    let a = api
        .customer(get(&format!("{ROOT}/login")).header(header::COOKIE, "cg_account=~~~junk"))
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn login_errors_are_in_plain_words_next_to_the_field() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    let email = tab.sign_up("individual").await;
    tab.submit("", "/logout", &[]).await;
    let mut fresh = Tab::new(&api);
    let a = fresh
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", "wrong password!")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(&a);
    assert!(
        html.contains("The email or the password is not right."),
        "{html}"
    );
    assert!(
        html.contains("aria-describedby=\"f-email-error\""),
        "{html}"
    );
    assert!(html.contains("aria-invalid=\"true\""));
    let a = fresh
        .submit(
            "/login",
            "/login",
            &[("email", &email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let overview = fresh.get("").await;
    assert_eq!(overview.status, StatusCode::OK);
    let html = text(&overview);
    assert!(html.contains("Your tier: unverified"), "{html}");
    assert!(html.contains("Next: identity_verified"), "{html}");
    assert!(html.contains("A verified identity check"), "{html}");
}

#[tokio::test]
async fn sign_up_refusals_are_shown_next_to_their_fields_and_escaped() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    let a = tab
        .submit(
            "/signup",
            "/signup",
            &[("email", EVIL), ("password", "short"), ("kind", "")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(&a);
    for id in ["f-email-error", "f-password-error", "f-kind-error"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}: {html}");
    }
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains(EVIL_ESCAPED), "{html}");
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    tab.sign_up("individual").await;
    let old_cookie = tab.cookie.clone().unwrap();
    let a = tab.submit("", "/logout", &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.headers[header::LOCATION],
        format!("{ROOT}/login?done=signed_out")
    );
    let replay = api
        .customer(get(ROOT).header(header::COOKIE, &old_cookie))
        .await;
    assert_eq!(
        replay.status,
        StatusCode::SEE_OTHER,
        "the old tokens are revoked"
    );
    let login = tab.get("/login?done=signed_out").await;
    assert!(text(&login).contains("You are signed out."));
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_with_the_refresh_token() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    tab.sign_up("individual").await;
    let cookie = tab.cookie.clone().unwrap();
    let (sid, rest) = cookie.split_once('~').unwrap();
    let (_, refresh) = rest.split_once('~').unwrap();
    // An access token that no longer decodes stands for an expired one.
    tab.cookie = Some(format!("{sid}~not.a.token~{refresh}"));
    let a = tab.get("").await;
    assert_eq!(a.status, StatusCode::OK, "{}", text(&a));
    let renewed = tab.cookie.clone().unwrap();
    assert!(renewed.starts_with(sid), "same session id");
    assert!(
        !renewed.contains("not.a.token") && !renewed.ends_with(refresh),
        "new tokens"
    );
    // The old refresh token is spent: replaying it ends the session family.
    let replay = api
        .customer(get(ROOT).header(header::COOKIE, &format!("{sid}~x.y.z~{refresh}")))
        .await;
    assert_eq!(replay.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_organization_fills_the_form_uploads_and_sees_what_is_missing() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    tab.sign_up("organization").await;
    let a = tab
        .submit(
            "/application",
            "/application",
            &[
                ("action", "save"),
                ("requested_tier", "validated_end_user"),
                ("organization.legal_name", EVIL),
                ("organization.registration_number", "HRB 1"),
                ("organization.jurisdiction", "DE"),
                ("organization.beneficial_owners[0].legal_name", EVIL),
                ("organization.beneficial_owners[0].ownership_percent", "60"),
                ("intended_use.description", EVIL),
                ("expected_peak_accelerators", "64"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let page = tab.get("/application?done=saved").await;
    let html = text(&page);
    assert!(html.contains("Your application was saved."));
    assert!(
        html.contains("Status: <span class=\"status status-warn\">Draft</span>"),
        "{html}"
    );
    // Every free-text field shows what was typed, escaped.
    assert!(!html.contains("<script>"), "{html}");
    assert_eq!(html.matches(EVIL_ESCAPED).count(), 3, "{html}");
    // What is missing, linked to its input, and the compliance plan the tier needs.
    assert!(html.contains("What is missing"));
    assert!(
        html.contains("href=\"#f-organization-representative-legal-name\""),
        "{html}"
    );
    assert!(html.contains("href=\"#f-intended-use-category\""), "{html}");
    assert!(html.contains("A compliance plan document"), "{html}");
    assert!(
        html.contains("Beneficial owner 2"),
        "a second owner slot is offered"
    );

    // A bad number is refused next to its input, with the typed values kept.
    let a = tab
        .submit(
            "/application",
            "/application",
            &[
                ("expected_total_flop", "lots"),
                ("organization.legal_name", "Kept Ltd"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(&a);
    assert!(
        html.contains("id=\"f-expected-total-flop-error\""),
        "{html}"
    );
    assert!(html.contains("value=\"Kept Ltd\""), "{html}");

    // Upload the compliance plan (multipart, with the CSRF token).
    let token = csrf_of(&text(&tab.get("/application").await));
    let pdf = std::fs::read(data("passport.pdf")).unwrap();
    let upload =
        |csrf: &str| multipart(csrf, "compliance_plan", "plan.pdf", "application/pdf", &pdf);
    let refused = tab.send(upload("forged")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let a = tab.send(upload(&token)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", text(&a));
    let html = text(&tab.get("/application").await);
    assert!(html.contains("<td>Compliance plan</td>"), "{html}");
    assert!(
        !html.contains("A compliance plan document (upload"),
        "no longer missing: {html}"
    );

    // Submitting an incomplete application is refused with every field named.
    let a = tab
        .submit(
            "/application",
            "/application",
            &[("action", "submit"), ("organization.legal_name", "Acme")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&a));
    assert!(text(&a).contains("There is a problem"));
}

fn multipart(csrf: &str, doc_type: &str, filename: &str, content_type: &str, bytes: &[u8]) -> Call {
    let boundary = "portal-test-boundary";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf), ("type", doc_type)] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Call::new(Method::POST, &format!("{ROOT}/application/documents"))
        .raw(&format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn api_keys_are_created_with_scopes_shown_once_and_revoked() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    tab.sign_up("individual").await;
    let a = tab
        .submit("/keys", "/keys", &[("name", "ci"), ("expires", "")])
        .await;
    assert_eq!(
        a.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no scope chosen"
    );
    assert!(text(&a).contains("Choose at least one scope."));
    let a = tab
        .submit("/keys", "/keys", &[("name", EVIL), ("scopes", "read")])
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", text(&a));
    let html = text(&a);
    let at = html.find("id=\"new-key\">").unwrap() + 13;
    let secret = html[at..].split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("cg_"), "{secret}");
    assert!(html.contains(EVIL_ESCAPED) && !html.contains("<script>"));
    // The key works on the JSON API with its scope only.
    let me = api
        .customer(get("/computegate/v1/organization/invitations").bearer(&secret))
        .await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    // Shown once: the list never has it.
    let list = text(&tab.get("/keys").await);
    assert!(!list.contains(&secret));
    assert!(list.contains("<td>read</td>"), "{list}");
    let marker = "name=\"key_id\" value=\"";
    let id_at = list.find(marker).unwrap() + marker.len();
    let id = list[id_at..].split('"').next().unwrap().to_owned();
    let a = tab
        .submit("/keys", "/keys/revoke", &[("key_id", &id)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{id}: {}", text(&a));
    let list = text(&tab.get("/keys?done=revoked").await);
    assert!(list.contains("<td>revoked</td>"), "{list}");
    assert!(list.contains("The key was revoked."));
}

#[tokio::test]
async fn usage_and_organization_pages_render_for_a_new_customer() {
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    tab.sign_up("individual").await;
    let usage = tab.get("/usage").await;
    assert_eq!(usage.status, StatusCode::OK, "{}", text(&usage));
    assert_page(&usage);
    let html = text(&usage);
    assert!(html.contains("No jobs yet."), "{html}");
    assert!(
        html.contains("Thresholds ahead") || html.contains("No usage counted yet."),
        "{html}"
    );
    let org = tab.get("/organization").await;
    assert_eq!(org.status, StatusCode::OK);
    assert!(text(&org).contains("You do not belong to an organization."));
    let a = tab
        .submit(
            "/organization",
            "/organization/invite",
            &[("email", "friend@example.com")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&a));
    assert!(text(&a).contains("There is a problem"), "{}", text(&a));
    assert!(text(&a).contains("owner may do this"), "{}", text(&a));
}

#[tokio::test]
async fn jobs_show_their_flop_and_why_one_was_refused() {
    use crate::api::metering::fixtures::admit_capped;
    let api = Api::start().await;
    let mut tab = Tab::new(&api);
    let email = tab.sign_up("individual").await;
    let customer = (api
        .identity()
        .store
        .accounts()
        .customer_by_email(&email)
        .await)
        .unwrap()
        .unwrap();
    admit_capped(&api, customer.id, 1e18, None, Some(1e19)).await;
    admit_capped(&api, customer.id, 5e19, None, Some(1e19)).await;
    let html = text(&tab.get("/usage").await);
    assert!(html.contains("<td>Admitted</td>"), "{html}");
    assert!(
        html.contains("1.00e18"),
        "the admitted job's estimate: {html}"
    );
    assert!(
        html.contains("Refused: the training run would pass your tier&#39;s FLOP-per-run cap"),
        "{html}"
    );
    assert!(html.contains("<td>denied</td>"), "{html}");
}
