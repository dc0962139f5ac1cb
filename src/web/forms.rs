//! Forms: the CSRF-checked form extractor ([`CsrfForm`]) and form errors in plain words, next
//! to the field they are about. A handler that refuses a form
//! renders the same page again with the values typed and a [`FormErrors`]; the macros of
//! `templates/web/forms.html` show each message under its label, tie it to the input with
//! `aria-describedby` and `aria-invalid`, and the page lists them all in a summary at the top
//! whose links move the focus to each field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::WebError;
use super::session::Browser;
use crate::api::error::ApiError;

/// A `application/x-www-form-urlencoded` form whose `csrf` field matched the session's token;
/// anything else is refused with 403 before `T` is even parsed. `T` ignores the `csrf` field
/// (serde skips unknown fields unless told otherwise); a `Vec<(String, String)>` takes every
/// field in order.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize, Default)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// The problems with one submitted form.
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    fields: Vec<(String, String)>,
}

// === impl FormErrors ===

impl FormErrors {
    /// No errors.
    pub fn new() -> FormErrors {
        FormErrors::default()
    }

    /// Errors as `(field name, problem)` pairs (the services' own shape).
    pub fn from_pairs(fields: Vec<(String, String)>) -> FormErrors {
        FormErrors { fields }
    }

    /// A service's refusal of a form: its field errors (shown next to the fields), or the page
    /// to answer instead when the refusal is not about fields.
    pub fn from_refusal(e: impl Into<ApiError>) -> Result<FormErrors, WebError> {
        match e.into() {
            ApiError::Invalid(fields) => Ok(FormErrors::from_pairs(fields)),
            ApiError::InvalidFields(fields) => Ok(FormErrors {
                fields: fields.into_iter().map(|f| (f.field, f.problem)).collect(),
            }),
            other => Err(other.into()),
        }
    }

    /// Adds a problem with field `name` (the input's `name`).
    pub fn add(&mut self, name: impl Into<String>, problem: impl Into<String>) {
        self.fields.push((name.into(), problem.into()));
    }

    /// Whether the form had no problem.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The first problem with field `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, p)| p.as_str())
    }

    /// Every problem, in the order found (the summary).
    pub fn all(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The `id` of the input named `name`: `f-` and the name with anything but letters and
    /// digits turned into `-` (names like `owners[0].legal_name` are not convenient ids).
    pub fn id(&self, name: &str) -> String {
        field_id(name)
    }
}

/// Whether two texts are equal, whatever string type each is (the `select` macro compares an
/// option with the current value, which a page may pass as `String` or `&str`).
pub fn same(a: impl AsRef<str>, b: impl AsRef<str>) -> bool {
    a.as_ref() == b.as_ref()
}

// === impl CsrfForm ===

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let browser = Browser::from_request_parts(&mut parts, state).await?;
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(WebError::BadRequest(
                "this page takes a form; send it from the page itself".into(),
            ));
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    WebError::TooLarge("the form is larger than this page accepts".into())
                } else {
                    WebError::BadRequest("the form could not be read".into())
                }
            })?;
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        browser.check_csrf(&csrf)?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::BadRequest(format!("the form could not be read: {e}")))?;
        Ok(CsrfForm(form))
    }
}

/// See [`FormErrors::id`].
pub fn field_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len() + 2);
    id.push_str("f-");
    id.extend(
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }),
    );
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_found_by_field_and_ids_are_plain() {
        let mut e = FormErrors::new();
        assert!(e.is_empty());
        e.add("email", "is not a valid address");
        e.add("owners[0].legal_name", "required");
        e.add("email", "second problem");
        assert_eq!(e.get("email"), Some("is not a valid address"));
        assert_eq!(e.get("password"), None);
        assert_eq!(e.all().len(), 3);
        assert_eq!(e.id("owners[0].legal_name"), "f-owners-0--legal-name");
    }
}
