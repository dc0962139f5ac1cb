//! The denied-party list in memory (the latest imported version, reloaded when a newer one
//! appears) and the mapping between an application's parties and the screening engine.

use std::sync::{Arc, RwLock};

use computegate_kyc::Store;
use computegate_kyc::screening::{
    Decision, EntryKind, ListVersion, PartialDate, ScoringConfig, ScreeningError, ScreeningIndex,
    ScreeningResult,
};
use computegate_kyc::verification::{
    PartyScreening, ScreeningDecision, ScreeningSubject, ScreeningSummary, VerificationError,
};
use uuid::Uuid;

/// Why screening an application could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScreeningRunError {
    /// The application store refused or failed.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// The list store or index failed.
    #[error(transparent)]
    Screening(#[from] ScreeningError),
    /// Changing the customer's status failed.
    #[error(transparent)]
    Account(#[from] computegate_kyc::accounts::AccountError),
    /// Reading the end customers to re-screen failed.
    #[error(transparent)]
    Reseller(#[from] computegate_kyc::verification::ResellerError),
}

/// A list version and its index.
pub struct LoadedList {
    /// The version.
    pub version: ListVersion,
    /// Its candidate index.
    pub index: ScreeningIndex,
}

/// The latest list version's index, shared by every screening in the process.
#[derive(Default)]
pub struct ScreeningCache {
    current: RwLock<Option<Arc<LoadedList>>>,
    /// Held while an index is being built, so concurrent callers build it once.
    loading: tokio::sync::Mutex<()>,
}

// === impl ScreeningCache ===

impl ScreeningCache {
    /// The latest imported version's index, (re)built when the store holds a newer version
    /// than the one in memory; `None` when no list was ever imported.
    pub async fn current(&self, store: &Store) -> Result<Option<Arc<LoadedList>>, ScreeningError> {
        let Some(latest) = store.screening().latest_screening_version().await? else {
            return Ok(None);
        };
        if let Some(list) = self.cached(latest.id) {
            return Ok(Some(list));
        }
        let _guard = self.loading.lock().await;
        if let Some(list) = self.cached(latest.id) {
            return Ok(Some(list));
        }
        let started = std::time::Instant::now();
        let index = store
            .screening()
            .load_screening_index(latest.id, ScoringConfig::default())
            .await?;
        tracing::info!(
            version = %latest.id,
            format = %latest.format,
            entries = latest.entry_count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "screening list loaded"
        );
        let list = Arc::new(LoadedList {
            version: latest,
            index,
        });
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(list.clone());
        Ok(Some(list))
    }

    fn cached(&self, version: Uuid) -> Option<Arc<LoadedList>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|l| l.version.id == version)
            .cloned()
    }
}

/// Screens every party against `list`: the summary the application records, and each party's
/// engine result (for `screening_results`) by role.
pub fn screen_subjects(
    list: &LoadedList,
    subjects: &[ScreeningSubject],
) -> (ScreeningSummary, Vec<(String, ScreeningResult)>) {
    let mut parties = Vec::with_capacity(subjects.len());
    let mut results = Vec::with_capacity(subjects.len());
    for subject in subjects {
        let result = list.index.screen(&engine_subject(subject));
        parties.push(PartyScreening {
            role: subject.role.clone(),
            score: result.score,
            decision: decision(result.decision),
            best: result
                .best
                .as_ref()
                .and_then(|b| serde_json::to_value(b).ok()),
        });
        results.push((subject.role.clone(), result));
    }
    let summary = ScreeningSummary {
        list_version: list.version.id.to_string(),
        parties,
    };
    (summary, results)
}

/// The parties of an application to screen (the same parties the store hands out when screening
/// starts).
pub use computegate_kyc::verification::screening_subjects as subjects_of;

/// `screening_results.subject_ref` of one party of an application.
pub(super) fn subject_ref(application: Uuid, role: &str) -> String {
    format!("application:{application}:{role}")
}

/// The engine's view of a party.
pub(super) fn engine_subject(s: &ScreeningSubject) -> computegate_kyc::screening::ScreeningSubject {
    let kind = match s.entity {
        "organization" => EntryKind::Organization,
        "person" => EntryKind::Person,
        _ => EntryKind::Other,
    };
    computegate_kyc::screening::ScreeningSubject {
        kind,
        full_name: s.name.clone(),
        date_of_birth: s.date_of_birth.as_deref().and_then(PartialDate::parse),
        countries: s.countries.clone(),
        id_numbers: s.identifiers.clone(),
    }
}

fn decision(d: Decision) -> ScreeningDecision {
    match d {
        Decision::Clear => ScreeningDecision::Clear,
        Decision::Review => ScreeningDecision::Review,
        Decision::Hit => ScreeningDecision::Hit,
    }
}

/// The subject of an ad-hoc screening search (`computegate screening check`, the console's
/// screening page): a name in any script, an optional date of birth (`YYYY-MM-DD`, `YYYY-MM`
/// or `YYYY`) and countries (alpha-2 codes or names). Every problem at once, by field (`name`,
/// `dob`, `country`).
pub fn adhoc_subject(
    name: &str,
    dob: Option<&str>,
    countries: &[String],
    kind: EntryKind,
) -> Result<computegate_kyc::screening::ScreeningSubject, Vec<(String, String)>> {
    let mut errors: Vec<(String, String)> = Vec::new();
    if name.trim().is_empty() {
        errors.push(("name".into(), "is empty".into()));
    }
    let date_of_birth = dob.filter(|d| !d.trim().is_empty()).and_then(|text| {
        let parsed = PartialDate::parse(text.trim());
        if parsed.is_none() {
            errors.push((
                "dob".into(),
                format!("`{text}` is not a date (YYYY-MM-DD, YYYY-MM or YYYY)"),
            ));
        }
        parsed
    });
    let countries: Vec<String> = countries
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    for country in &countries {
        if computegate_kyc::screening::country_code(country).is_none() {
            errors.push((
                "country".into(),
                format!("`{country}` is not an ISO 3166 alpha-2 code or a country name"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(computegate_kyc::screening::ScreeningSubject {
        date_of_birth,
        countries,
        ..computegate_kyc::screening::ScreeningSubject::new(kind, name.trim())
    })
}

#[cfg(test)]
mod tests {
    use computegate_kyc::verification::payload::ApplicationPayload;

    use super::*;
    use computegate_kyc::screening::ListEntry;

    fn list() -> LoadedList {
        let entry = ListEntry {
            key: "csl:test:1".into(),
            source: "test".into(),
            kind: EntryKind::Person,
            names: vec!["Ivan Petrovich ZORVATH".into()],
            weak_aliases: vec![],
            dates_of_birth: PartialDate::parse("1970-01-12").into_iter().collect(),
            countries: vec!["RU".into()],
            id_numbers: vec!["P7788123".into()],
            programs: vec![],
        };
        let id = Uuid::now_v7();
        LoadedList {
            version: ListVersion {
                id,
                format: computegate_kyc::screening::ListFormat::Csl,
                source_file: "csl.csv".into(),
                label: "test".into(),
                sha256: String::new(),
                entry_count: 1,
                imported_at: time::OffsetDateTime::UNIX_EPOCH,
            },
            index: ScreeningIndex::build(id, vec![entry], ScoringConfig::default()),
        }
    }

    fn payload(name: &str) -> ApplicationPayload {
        serde_json::from_value(serde_json::json!({
            "kind": "individual",
            "individual": {
                "legal_name": name, "date_of_birth": "1970-01-12", "nationality": "RU",
                "address": {"line1": "1 A St", "city": "X", "postal_code": "1", "country": "RU"},
                "id_document": {"type": "passport", "number": "P7788123", "issuing_country": "RU"},
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_listed_person_is_a_hit_and_a_stranger_is_clear() {
        let list = list();
        let (summary, results) = screen_subjects(&list, &subjects_of(&payload("Ivan Zorvath")));
        assert_eq!(summary.decision(), ScreeningDecision::Hit, "{summary:?}");
        assert_eq!(summary.list_version, list.version.id.to_string());
        assert_eq!(results[0].0, "applicant");
        assert!(summary.parties[0].best.is_some());

        let (clear, _) = screen_subjects(&list, &subjects_of(&payload("Maria Lindqvist")));
        assert_eq!(clear.decision(), ScreeningDecision::Clear, "{clear:?}");
    }

    #[test]
    fn organizations_name_every_owner() {
        let p: ApplicationPayload = serde_json::from_value(serde_json::json!({
            "kind": "organization",
            "organization": {
                "legal_name": "Acme GmbH", "registration_number": "HRB 1", "jurisdiction": "DE",
                "representative": {"legal_name": "A B"},
                "beneficial_owners": [{"legal_name": "C D", "ownership_percent": 50.0},
                                      {"legal_name": "E F", "ownership_percent": 50.0}]
            }
        }))
        .unwrap();
        let roles: Vec<String> = subjects_of(&p).into_iter().map(|s| s.role).collect();
        assert_eq!(
            roles,
            [
                "organization",
                "representative",
                "beneficial_owner[0]",
                "beneficial_owner[1]"
            ]
        );
    }
}
