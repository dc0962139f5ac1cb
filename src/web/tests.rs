//! The foundation through a tiny surface: headers, the cookie, CSRF, error pages, the
//! stylesheet, escaping. No services: the pages here only echo what they are given.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use computegate_gateway::forward::ClientFacts;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::api::extract::Client;

static SURFACE: Surface = Surface {
    name: "Test surface",
    root: "/t",
    cookie: "cg_test",
};

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{% extends "web/base.html" %}{% import "web/forms.html" as forms %}
{% block content %}{% call forms::summary(errors) %}{% endcall %}
<form method="post" action="/t/echo">{% call forms::csrf(chrome.csrf) %}{% endcall %}
{% call forms::input(errors, "name", "Name", name, "text", "name", "") %}{% endcall %}
</form>{% endblock %}"#
)]
struct EchoPage {
    chrome: Chrome,
    errors: FormErrors,
    name: String,
}

#[derive(serde::Deserialize)]
struct EchoForm {
    name: String,
}

fn app() -> Router {
    let pages = Router::new()
        .route(
            "/echo",
            get(|b: Browser| async move { page(&b, String::new(), FormErrors::new()) }).post(
                |b: Browser, CsrfForm(f): CsrfForm<EchoForm>| async move {
                    let mut errors = FormErrors::new();
                    errors.add("name", format!("{} is not accepted", f.name));
                    page(&b, f.name, errors)
                },
            ),
        )
        .route(
            "/boom",
            get(|| async { Err::<Response, _>(WebError::Internal("secret detail".into())) }),
        )
        .route(
            "/private",
            get(|| async { Err::<Response, _>(WebError::SignInRequired) }),
        );
    mount(&SURFACE, CsrfKey::derive(&master(), "test"), pages)
}

fn page(b: &Browser, name: String, errors: FormErrors) -> Response {
    let chrome = b
        .chrome("Echo")
        .signed_in("a@b.example", &[("echo", "Echo")], "echo");
    render(&EchoPage {
        chrome,
        errors,
        name,
    })
}

fn master() -> computegate_kyc::crypto::MasterKey {
    computegate_kyc::crypto::MasterKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .unwrap()
}

struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
}

async fn send(req: http::request::Builder, body: &str, proto: &'static str) -> Got {
    let mut req = req.body(Body::from(body.to_owned())).unwrap();
    req.extensions_mut().insert(Client(ClientFacts {
        ip: [192, 0, 2, 1].into(),
        proto,
        trust_forwarded: false,
    }));
    let resp = app().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get_req(path: &str) -> http::request::Builder {
    Request::builder().uri(path)
}

fn cookie_of(got: &Got) -> String {
    let set = got.headers[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The hidden CSRF field's value on a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_an_anonymous_session_cookie() {
    let got = send(get_req("/t/echo"), "", "http").await;
    assert_eq!(got.status, StatusCode::OK);
    let h = |n: header::HeaderName| got.headers[n].to_str().unwrap().to_owned();
    assert_eq!(
        h(header::CONTENT_SECURITY_POLICY),
        headers::CONTENT_SECURITY_POLICY
    );
    assert!(h(header::CONTENT_SECURITY_POLICY).contains("default-src 'none'"));
    assert_eq!(h(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(h(header::REFERRER_POLICY), "no-referrer");
    assert_eq!(h(header::CACHE_CONTROL), "no-store");
    assert!(h(header::CONTENT_TYPE).starts_with("text/html"));
    let set = h(header::SET_COOKIE);
    assert!(set.starts_with("cg_test="), "{set}");
    for attr in ["; Path=/t", "; HttpOnly", "; SameSite=Strict"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    // Landmarks, skip link, one h1, the stylesheet by version.
    for part in [
        "href=\"#main\"",
        "<main id=\"main\"",
        "<h1>Echo</h1>",
        "aria-current=\"page\"",
        &format!("/t/assets/site.css?v={}", assets::version()),
    ] {
        assert!(got.text.contains(part), "{part}");
    }
}

#[tokio::test]
async fn the_cookie_is_secure_under_tls() {
    let got = send(get_req("/t/echo"), "", "https").await;
    let set = got.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
}

#[tokio::test]
async fn a_post_needs_the_sessions_csrf_token() {
    let first = send(get_req("/t/echo"), "", "http").await;
    let cookie = cookie_of(&first);
    let token = csrf_of(&first.text);
    let post = |body: String, cookie: Option<String>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/t/echo")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        async move { send(req, &body, "http").await }
    };
    // No token, a wrong one, the right one without the cookie: 403, a page in plain words.
    for (body, cookie) in [
        ("name=x".to_owned(), Some(cookie.clone())),
        ("name=x&csrf=AAAA".to_owned(), Some(cookie.clone())),
        (format!("name=x&csrf={token}"), None),
    ] {
        let got = post(body, cookie).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN);
        assert!(got.text.contains("The form has expired"), "{}", got.text);
        assert!(got.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    // The right token: the form is handled; the typed HTML comes back escaped, next to its
    // field, tied to it for screen readers.
    let evil = "<script>alert(1)</script>\"'&";
    let body = format!("name={}&csrf={token}", urlencode(evil));
    let got = post(body, Some(cookie)).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert!(!got.text.contains("<script>"), "{}", got.text);
    assert!(
        got.text
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        got.text
    );
    assert!(got.text.contains("aria-describedby=\"f-name-error\""));
    assert!(
        got.text
            .contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;&#34;&#39;&#38;\""),
        "the typed value is put back, escaped: {}",
        got.text
    );
    assert!(got.text.contains("id=\"f-name-error\""));
    assert!(got.text.contains("There is a problem"));
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_owned()
}

#[tokio::test]
async fn errors_are_html_pages_without_their_detail() {
    let got = send(get_req("/t/boom"), "", "http").await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(got.text.contains("Something went wrong"));
    assert!(!got.text.contains("secret detail"));
    assert!(got.headers.contains_key(header::CONTENT_SECURITY_POLICY));

    let got = send(get_req("/t/nowhere"), "", "http").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert!(got.text.contains("Page not found"), "{}", got.text);

    // A method the page does not take (axum's bare 405) is a page too.
    let got = send(
        Request::builder().method("DELETE").uri("/t/echo"),
        "",
        "http",
    )
    .await;
    assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(got.text.contains("<h1>"), "{}", got.text);

    let got = send(get_req("/t/private"), "", "http").await;
    assert_eq!(got.status, StatusCode::SEE_OTHER);
    assert_eq!(got.headers[header::LOCATION], "/t/login");
}

#[tokio::test]
async fn the_stylesheet_is_cached_and_revalidated() {
    let got = send(get_req("/t/assets/site.css"), "", "http").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text, assets::STYLESHEET);
    assert!(
        got.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert_eq!(got.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let etag = got.headers[header::ETAG].to_str().unwrap().to_owned();
    let got = send(
        get_req("/t/assets/site.css").header(header::IF_NONE_MATCH, etag),
        "",
        "http",
    )
    .await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
}
