//! Risk scoring: explainable additive rules over an application's facts, and the jurisdiction
//! rules (policy data) that feed them. Pure; every point comes with a code and a sentence a
//! reviewer can read.
//!
//! | code | points | when |
//! |---|---|---|
//! | `embargoed_jurisdiction` | 100 | any named country is embargoed (the application is auto-rejected) |
//! | `screening_hit` / `screening_review` | 40 / 25 | screening decision (before any override) |
//! | `screening_similarity` | ⌊score × 20⌋ | clear screening with a best score ≥ 0.3 |
//! | `high_risk_jurisdiction` | 20 | any named country is in the high-risk group |
//! | `biological_sequence_data` | 15 | declared training on biological sequences |
//! | `model_export` | 10 | declared intent to export model weights |
//! | `large_scale_compute` | 5 / 15 / 20 | expected total ≥ 1e23 / 1e25 / 1e26 FLOP |
//! | `large_accelerator_count` | 5 / 15 | expected peak ≥ 64 / 1024 accelerators |
//! | `idv_failed` / `idv_requires_input` / `idv_missing` | 25 / 10 / 10 | identity verification outcome (individuals) |
//! | `ip_country_mismatch` | 10 | the request's IP country differs from residence / headquarters |
//! | `ip_high_risk` | 20 | the request came from a high-risk or embargoed country |
//! | `reseller` | 10 | the organization resells compute |
//!
//! The score is the sum, capped at 100.

use super::payload::{ApplicantKind, ApplicationPayload};
use super::state::ScreeningDecision;
use super::webhooks::IdvOutcome;

/// Countries (ISO 3166-1 alpha-2) that policy treats specially. Data from the policy file,
/// never constants in code.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JurisdictionRules {
    /// Applications naming any of these are rejected automatically.
    pub embargoed: Vec<String>,
    /// Applications naming any of these are flagged for review.
    pub high_risk: Vec<String>,
}

/// Which of an application's countries the rules catch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JurisdictionFinding {
    /// Named countries that are embargoed.
    pub embargoed: Vec<String>,
    /// Named countries that are high-risk.
    pub high_risk: Vec<String>,
}

/// The facts a risk assessment uses.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskInputs<'a> {
    /// The application.
    pub payload: &'a ApplicationPayload,
    /// Screening decision (as the engine gave it, before overrides).
    pub screening_decision: ScreeningDecision,
    /// Best screening score, `[0, 1]`.
    pub screening_score: f64,
    /// Latest IDV outcome, if any arrived.
    pub idv: Option<IdvOutcome>,
    /// Country of the IP the application was submitted from, if known (GeoIP is the caller's).
    pub ip_country: Option<&'a str>,
    /// Jurisdiction rules from policy.
    pub rules: &'a JurisdictionRules,
}

/// A score with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RiskAssessment {
    /// 0..=100.
    pub score: u8,
    /// Every rule that added points, in table order.
    pub factors: Vec<RiskFactor>,
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RiskFactor {
    /// Stable code (see the module table).
    pub code: String,
    /// Points added.
    pub points: u8,
    /// Why, for the reviewer.
    pub explanation: String,
}

// === impl JurisdictionRules ===

impl JurisdictionRules {
    /// Which of `countries` are embargoed or high-risk.
    pub fn check<S: AsRef<str>>(&self, countries: &[S]) -> JurisdictionFinding {
        let pick = |list: &[String]| -> Vec<String> {
            countries
                .iter()
                .map(AsRef::as_ref)
                .filter(|c| list.iter().any(|l| l == c))
                .map(str::to_owned)
                .collect()
        };
        JurisdictionFinding {
            embargoed: pick(&self.embargoed),
            high_risk: pick(&self.high_risk),
        }
    }
}

/// Scores an application.
pub fn assess(inputs: &RiskInputs<'_>) -> RiskAssessment {
    let mut factors = Vec::new();
    let mut add = |code: &str, points: u8, explanation: String| {
        factors.push(RiskFactor {
            code: code.to_owned(),
            points,
            explanation,
        });
    };
    let p = inputs.payload;
    let finding = inputs.rules.check(&p.countries());
    if !finding.embargoed.is_empty() {
        add(
            "embargoed_jurisdiction",
            100,
            format!(
                "names embargoed countries: {}",
                finding.embargoed.join(", ")
            ),
        );
    }
    let score = inputs.screening_score.clamp(0.0, 1.0);
    match inputs.screening_decision {
        ScreeningDecision::Hit => add(
            "screening_hit",
            40,
            format!("denied-party screening hit (score {score:.2})"),
        ),
        ScreeningDecision::Review => add(
            "screening_review",
            25,
            format!("denied-party screening in the review band (score {score:.2})"),
        ),
        ScreeningDecision::Clear if score >= 0.3 => add(
            "screening_similarity",
            (score * 20.0).floor() as u8,
            format!("closest list entry scored {score:.2} (below review threshold)"),
        ),
        ScreeningDecision::Clear => {}
    }
    if !finding.high_risk.is_empty() {
        add(
            "high_risk_jurisdiction",
            20,
            format!(
                "names high-risk countries: {}",
                finding.high_risk.join(", ")
            ),
        );
    }
    if let Some(u) = &p.intended_use {
        if u.biological_sequence_data == Some(true) {
            add(
                "biological_sequence_data",
                15,
                "declares training on biological-sequence data".into(),
            );
        }
        if u.model_export == Some(true) {
            add(
                "model_export",
                10,
                "declares intent to export model weights".into(),
            );
        }
    }
    scale_factors(p, &mut add);
    if p.kind == ApplicantKind::Individual {
        match inputs.idv {
            Some(IdvOutcome::Failed) => add(
                "idv_failed",
                25,
                "identity verification failed or was declined".into(),
            ),
            Some(IdvOutcome::RequiresInput) => add(
                "idv_requires_input",
                10,
                "identity verification needs more input".into(),
            ),
            Some(IdvOutcome::Verified) => {}
            None => add(
                "idv_missing",
                10,
                "no identity-verification result yet".into(),
            ),
        }
    }
    ip_factors(inputs, &mut add);
    if p.organization.as_ref().and_then(|o| o.reseller) == Some(true) {
        add(
            "reseller",
            10,
            "resells compute to its own customers".into(),
        );
    }
    let total: u32 = factors.iter().map(|f| u32::from(f.points)).sum();
    RiskAssessment {
        score: total.min(100) as u8,
        factors,
    }
}

fn scale_factors(p: &ApplicationPayload, add: &mut impl FnMut(&str, u8, String)) {
    if let Some(flop) = p.expected_total_flop {
        let points = if flop >= 1e26 {
            20
        } else if flop >= 1e25 {
            15
        } else if flop >= 1e23 {
            5
        } else {
            0
        };
        if points > 0 {
            add(
                "large_scale_compute",
                points,
                format!("expects {flop:.1e} FLOP in total"),
            );
        }
    }
    if let Some(n) = p.expected_peak_accelerators {
        let points = if n >= 1024 {
            15
        } else if n >= 64 {
            5
        } else {
            0
        };
        if points > 0 {
            add(
                "large_accelerator_count",
                points,
                format!("expects up to {n} accelerators at once"),
            );
        }
    }
}

fn ip_factors(inputs: &RiskInputs<'_>, add: &mut impl FnMut(&str, u8, String)) {
    let Some(ip_country) = inputs.ip_country else {
        return;
    };
    if let Some(home) = inputs.payload.primary_country()
        && home != ip_country
    {
        add(
            "ip_country_mismatch",
            10,
            format!("submitted from {ip_country}, residence or headquarters {home}"),
        );
    }
    let finding = inputs.rules.check(&[ip_country]);
    if !finding.embargoed.is_empty() || !finding.high_risk.is_empty() {
        add(
            "ip_high_risk",
            20,
            format!("submitted from {ip_country}, a restricted or high-risk country"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verification::payload::IntendedUse;

    const INDIVIDUAL: &str = include_str!("../../tests/data/verification/individual.json");
    const ORGANIZATION: &str = include_str!("../../tests/data/verification/organization.json");

    fn rules() -> JurisdictionRules {
        JurisdictionRules {
            embargoed: vec!["KP".into(), "IR".into()],
            high_risk: vec!["RU".into(), "US".into()],
        }
    }

    fn codes(a: &RiskAssessment) -> Vec<&str> {
        a.factors.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn clean_individual_scores_zero() {
        let p = ApplicationPayload::from_json(INDIVIDUAL.as_bytes()).unwrap();
        let a = assess(&RiskInputs {
            payload: &p,
            screening_decision: ScreeningDecision::Clear,
            screening_score: 0.1,
            idv: Some(IdvOutcome::Verified),
            ip_country: Some("GB"),
            rules: &rules(),
        });
        assert_eq!(
            a,
            RiskAssessment {
                score: 0,
                factors: vec![]
            }
        );
    }

    #[test]
    fn every_factor_explains_itself() {
        let mut p = ApplicationPayload::from_json(INDIVIDUAL.as_bytes()).unwrap();
        p.intended_use = Some(IntendedUse {
            biological_sequence_data: Some(true),
            model_export: Some(true),
            ..p.intended_use.clone().unwrap()
        });
        p.expected_total_flop = Some(2e25);
        p.expected_peak_accelerators = Some(2048);
        let a = assess(&RiskInputs {
            payload: &p,
            screening_decision: ScreeningDecision::Clear,
            screening_score: 0.55,
            idv: Some(IdvOutcome::RequiresInput),
            ip_country: Some("RU"),
            rules: &rules(),
        });
        assert_eq!(
            codes(&a),
            vec![
                "screening_similarity",
                "biological_sequence_data",
                "model_export",
                "large_scale_compute",
                "large_accelerator_count",
                "idv_requires_input",
                "ip_country_mismatch",
                "ip_high_risk",
            ]
        );
        assert_eq!(a.factors[0].points, 11);
        assert_eq!(a.score, 100); // 11+15+10+15+15+10+10+20 = 106, capped
        assert!(a.factors[6].explanation.contains("RU"));
        assert!(a.factors.iter().all(|f| !f.explanation.is_empty()));
    }

    #[test]
    fn jurisdictions_and_screening() {
        let p = ApplicationPayload::from_json(ORGANIZATION.as_bytes()).unwrap();
        let a = assess(&RiskInputs {
            payload: &p,
            screening_decision: ScreeningDecision::Hit,
            screening_score: 0.97,
            idv: None,
            ip_country: None,
            rules: &rules(),
        });
        // US (an owner's nationality) is high-risk in these test rules; organizations have no
        // IDV factor.
        assert_eq!(
            codes(&a),
            vec![
                "screening_hit",
                "high_risk_jurisdiction",
                "model_export",
                "large_scale_compute",
                "large_accelerator_count",
            ]
        );
        assert_eq!(a.score, 40 + 20 + 10 + 5 + 15);
        let finding = rules().check(&["DE", "KP", "RU"]);
        assert_eq!(finding.embargoed, vec!["KP"]);
        assert_eq!(finding.high_risk, vec!["RU"]);
    }
}
