//! The ad-hoc screening search: a name, an optional date of birth and countries against the
//! latest imported list, answered with the ranked matches and each score's features — what
//! `computegate screening check` prints. Nothing is recorded; any staff role may search.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use computegate_kyc::screening::EntryKind;
use serde::Deserialize;

use super::Staff;
use super::records::Table;
use crate::api::ApiState;
use crate::verification::{Verification, adhoc_subject};
use crate::web::{Chrome, FormErrors, WebError, render};

/// Matches a search shows.
const MATCHES: usize = 10;

#[derive(Template)]
#[template(path = "console/screening.html")]
struct SearchPage {
    chrome: Chrome,
    errors: FormErrors,
    form: SearchForm,
    list: Option<String>,
    searched: bool,
    matches: Vec<Match>,
}

/// One ranked match.
struct Match {
    rank: usize,
    name: String,
    key: String,
    source: String,
    kind: String,
    programs: String,
    score: String,
    decision: String,
    matched_name: String,
    features: Table,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    dob: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    kind: String,
}

/// The screening search route.
pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/screening", get(search))
}

async fn search(
    State(kyc): State<Arc<Verification>>,
    staff: Staff,
    Query(form): Query<SearchForm>,
) -> Result<Response, WebError> {
    let list = kyc
        .current_list()
        .await
        .map_err(|e| WebError::Unavailable(e.to_string()))?;
    let searched = !form.name.trim().is_empty();
    let mut errors = FormErrors::new();
    let mut matches = Vec::new();
    if searched {
        let kind = match form.kind.as_str() {
            "organization" => EntryKind::Organization,
            _ => EntryKind::Person,
        };
        let countries: Vec<String> = form.country.split(',').map(str::to_owned).collect();
        match (
            adhoc_subject(&form.name, Some(&form.dob), &countries, kind),
            &list,
        ) {
            (Err(problems), _) => errors = FormErrors::from_pairs(problems),
            (Ok(_), None) => errors.add(
                "name",
                "No denied-party list has been imported yet; import one with \
                 `computegate screening import`.",
            ),
            (Ok(subject), Some(list)) => {
                matches = list
                    .index
                    .search(&subject, MATCHES)
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| Match {
                        rank: i + 1,
                        name: m.entry.names.first().cloned().unwrap_or_default(),
                        key: m.entry.key.clone(),
                        source: m.entry.source.clone(),
                        kind: m.entry.kind.as_str().to_owned(),
                        programs: m.entry.programs.join(", "),
                        score: format!("{:.3}", m.score),
                        decision: m.decision.as_str().to_owned(),
                        matched_name: m.explanation.matched_name.clone(),
                        features: Table::of(
                            &m.explanation.features,
                            &[
                                ("/name", "Feature"),
                                ("/value", "Value"),
                                ("/weight", "Weight"),
                                ("/note", "Why"),
                            ],
                            "/name",
                            |_| None,
                        ),
                    })
                    .collect();
            }
        }
    }
    let list = list.map(|l| {
        format!(
            "{} ({} entries, imported {}, version {})",
            l.version.label,
            l.version.entry_count,
            l.version.imported_at.date(),
            l.version.id
        )
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = SearchPage {
        chrome: staff.chrome("Screening search", "screening"),
        errors,
        form,
        list,
        searched,
        matches,
    };
    Ok((status, render(&page)).into_response())
}
