//! The browser session of a surface: one cookie holding a random session id and, once signed
//! in, the access/refresh token pair the identity service issued at the password grant — no
//! second account or session system. The tokens are what makes the session server-checked: the
//! access token is a signed JWT checked (with revocation) on every request, the refresh token an
//! opaque secret the store rotates and revokes. The session id keys the CSRF token
//! ([`super::csrf`]).
//!
//! The cookie is `HttpOnly` (no script may read it; the pages have none anyway),
//! `SameSite=Strict`, `Path=<surface root>`, `Secure` when the listener speaks TLS, and has no
//! `Max-Age`: it ends with the browser, or earlier when the tokens do. Its value is
//! `<sid>` or `<sid>~<access token>~<refresh token>` (`~` occurs in neither token).
//!
//! [`track`] (a middleware) reads the cookie into a [`Browser`] that handlers extract; when a
//! handler signs in, renews or signs out, the cookie is written back once, after the handler.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::chrome::Chrome;
use super::csrf::CsrfKey;
use super::error::WebError;
use super::surface::Surface;
use crate::api::extract::Client;

/// The access and refresh tokens of a signed-in session. `Debug` hides both.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token (a JWT) the identity service issued.
    pub access: String,
    /// The refresh token that renews it.
    pub refresh: String,
}

/// The session of one request, shared by the handler and [`track`]. Cheap to clone.
#[derive(Clone)]
pub struct Browser {
    jar: Arc<Mutex<Jar>>,
    config: SessionConfig,
    secure: bool,
}

/// What [`track`] needs: the surface (cookie name and path) and its CSRF key.
#[derive(Clone, Debug)]
pub(crate) struct SessionConfig {
    surface: &'static Surface,
    key: CsrfKey,
}

/// The cookie's content and whether it must be written back.
struct Jar {
    sid: String,
    tokens: Option<TokenPair>,
    changed: bool,
}

/// The separator of the cookie's parts: in neither a JWT (base64url and dots) nor a refresh
/// token (`cgr_` and base64url), and a valid cookie octet.
const SEPARATOR: char = '~';

/// Length of a session id: 32 random bytes in unpadded base64url.
const SID_CHARS: usize = 43;

// === impl TokenPair ===

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenPair([redacted])")
    }
}

// === impl SessionConfig ===

impl SessionConfig {
    pub(crate) fn new(surface: &'static Surface, key: CsrfKey) -> Self {
        SessionConfig { surface, key }
    }
}

// === impl Browser ===

impl Browser {
    /// The surface this session belongs to.
    pub fn surface(&self) -> &'static Surface {
        self.config.surface
    }

    /// The signed-in session's tokens (`None`: nobody is signed in).
    pub fn tokens(&self) -> Option<TokenPair> {
        self.jar().tokens.clone()
    }

    /// The layout of a page of this session titled `title` (no navigation or user yet; see
    /// [`Chrome::signed_in`]).
    pub fn chrome(&self, title: impl Into<String>) -> Chrome {
        Chrome::new(self.surface(), self.csrf_token(), title)
    }

    /// The CSRF token every form of this session carries in its `csrf` field.
    pub fn csrf_token(&self) -> String {
        self.config.key.token(&self.jar().sid)
    }

    /// Refuses (403) a form whose `csrf` field is not this session's token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), WebError> {
        if self.config.key.verify(&self.jar().sid, presented) {
            Ok(())
        } else {
            Err(WebError::CsrfRejected)
        }
    }

    /// Starts a signed-in session with `tokens` under a new session id (so that a session id
    /// planted before sign-in is worthless after it).
    pub fn sign_in(&self, tokens: TokenPair) -> Result<(), WebError> {
        let sid = new_sid()?;
        let mut jar = self.jar();
        *jar = Jar {
            sid,
            tokens: Some(tokens),
            changed: true,
        };
        Ok(())
    }

    /// Replaces the tokens after a refresh grant, keeping the session id (forms already on
    /// screen stay valid).
    pub fn renew(&self, tokens: TokenPair) {
        let mut jar = self.jar();
        jar.tokens = Some(tokens);
        jar.changed = true;
    }

    /// Forgets the tokens and starts a new anonymous session. Revoking the tokens is the
    /// identity service's job; call it first.
    pub fn sign_out(&self) -> Result<(), WebError> {
        let sid = new_sid()?;
        *self.jar() = Jar {
            sid,
            tokens: None,
            changed: true,
        };
        Ok(())
    }

    /// Whether the connection is TLS (the cookie is then `Secure`).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, Jar> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.jar.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `Set-Cookie` value of the session as it stands.
    fn set_cookie(&self) -> Option<HeaderValue> {
        let jar = self.jar();
        let value = match &jar.tokens {
            Some(t) => format!("{}{SEPARATOR}{}{SEPARATOR}{}", jar.sid, t.access, t.refresh),
            None => jar.sid.clone(),
        };
        let surface = self.config.surface;
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path={}; HttpOnly; SameSite=Strict{secure}",
            surface.cookie, surface.root
        );
        // Tokens, ids and the configured name and path are all visible ASCII.
        HeaderValue::from_str(&cookie).ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Browser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        parts
            .extensions
            .get::<Browser>()
            .cloned()
            .ok_or_else(|| WebError::Internal("the session layer is not installed".into()))
    }
}

/// The middleware of [`super::mount`]: attaches the request's [`Browser`] (a new anonymous
/// session when the cookie is missing or malformed) and writes the cookie back when it changed.
pub(crate) async fn track(
    State(config): State<SessionConfig>,
    mut req: Request,
    next: Next,
) -> Response {
    let secure = req
        .extensions()
        .get::<Client>()
        .is_some_and(|Client(c)| c.proto == "https");
    let jar = match read_cookie(req.headers(), config.surface.cookie).and_then(parse) {
        Some(jar) => jar,
        None => match new_sid() {
            Ok(sid) => Jar {
                sid,
                tokens: None,
                changed: true,
            },
            Err(e) => return e.into_response(),
        },
    };
    let browser = Browser {
        jar: Arc::new(Mutex::new(jar)),
        config,
        secure,
    };
    req.extensions_mut().insert(browser.clone());
    let mut resp = next.run(req).await;
    if browser.jar().changed
        && let Some(cookie) = browser.set_cookie()
    {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    resp
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Parses a cookie value; anything but a well-formed one is a fresh session.
fn parse(value: &str) -> Option<Jar> {
    let mut parts = value.split(SEPARATOR);
    let sid = parts.next().filter(|s| is_sid(s))?.to_owned();
    let tokens = match (parts.next(), parts.next(), parts.next()) {
        (None, None, None) => None,
        (Some(access), Some(refresh), None) if !access.is_empty() && !refresh.is_empty() => {
            Some(TokenPair {
                access: access.to_owned(),
                refresh: refresh.to_owned(),
            })
        }
        _ => return None,
    };
    Some(Jar {
        sid,
        tokens,
        changed: false,
    })
}

fn is_sid(s: &str) -> bool {
    s.len() == SID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new random session id.
fn new_sid() -> Result<String, WebError> {
    let bytes = computegate_kyc::crypto::random_bytes::<32>()
        .map_err(|e| WebError::Internal(format!("no session id: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_parse_back_and_junk_starts_afresh() {
        let sid = new_sid().unwrap();
        assert_eq!(sid.len(), SID_CHARS);
        let jar = parse(&sid).unwrap();
        assert!(jar.tokens.is_none() && !jar.changed);
        let jar = parse(&format!("{sid}~a.b.c~cgr_x")).unwrap();
        let tokens = jar.tokens.unwrap();
        assert_eq!(
            (tokens.access.as_str(), tokens.refresh.as_str()),
            ("a.b.c", "cgr_x")
        );
        for junk in [
            "",
            "short",
            &format!("{sid}~only-one"),
            &format!("{sid}~a~b~c"),
            &format!("{sid}~~b"),
        ] {
            assert!(parse(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn the_cookie_is_read_by_its_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xcg=1; cg=2;other=3"),
        );
        assert_eq!(read_cookie(&h, "cg"), Some("2"));
        assert_eq!(read_cookie(&h, "other"), Some("3"));
        assert_eq!(read_cookie(&h, "c"), None);
    }
}
