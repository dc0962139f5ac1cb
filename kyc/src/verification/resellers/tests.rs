//! Unit tests of the reseller rules: screening standing, staff actions, identity validation.

use super::*;

fn screened(list: Option<&str>, decision: ScreeningDecision) -> EndCustomerScreeningResult {
    EndCustomerScreeningResult {
        list_version: list.map(str::to_owned),
        decision,
        score: 0.0,
    }
}

#[test]
fn a_hit_refuses_the_review_band_and_no_list_wait_and_clear_clears() {
    let of = |list, d| EndCustomerScreening::of(&screened(list, d));
    assert_eq!(
        of(Some("v1"), ScreeningDecision::Clear),
        EndCustomerScreening::Cleared
    );
    assert_eq!(
        of(Some("v1"), ScreeningDecision::Review),
        EndCustomerScreening::Review
    );
    assert_eq!(
        of(Some("v1"), ScreeningDecision::Hit),
        EndCustomerScreening::Refused
    );
    // Nothing screened against: never cleared.
    assert_eq!(
        of(None, ScreeningDecision::Clear),
        EndCustomerScreening::Review
    );
}

fn identity(requested_tier: Option<&str>) -> ApplicationPayload {
    let mut doc = serde_json::json!({
        "kind": "individual",
        "individual": {
            "legal_name": "Astrid Lindqvist", "date_of_birth": "1988-07-01", "nationality": "SE",
            "address": {"line1": "2 Storgatan", "city": "Uppsala", "postal_code": "75320", "country": "SE"},
            "id_document": {"type": "passport", "number": "SE1234567", "issuing_country": "SE"},
            "phone": "+46 70 765 43 21"
        },
        "payment_fingerprint": "pm_fp_1",
        "intended_use": {"category": "model_training", "description": "Fine-tuning.",
                         "biological_sequence_data": false, "model_export": false},
        "expected_peak_accelerators": 8,
        "expected_total_flop": 1.0e20
    });
    if let Some(tier) = requested_tier {
        doc["requested_tier"] = serde_json::json!(tier);
    }
    serde_json::from_value(doc).unwrap()
}

#[test]
fn an_identity_is_validated_like_an_application_but_applies_for_no_tier() {
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    assert!(validate_identity(&identity(None), now).is_ok());
    let Err(ResellerError::Invalid(errors)) =
        validate_identity(&identity(Some("identity_verified")), now)
    else {
        panic!("a requested tier is refused");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].field.as_str(), errors[0].code),
        (TIER_FIELD, "not_allowed")
    );
    let mut incomplete = identity(None);
    incomplete.individual = None;
    assert!(matches!(
        validate_identity(&incomplete, now),
        Err(ResellerError::Invalid(e)) if e.iter().any(|e| e.field == "individual")
    ));
}

#[test]
fn staff_actions_change_the_standing_or_say_nothing_changes() {
    use ResellerAction::{Resume, Suspend};
    use ResellerStatus::{Active, Flagged, Suspended};
    assert_eq!(Suspend.apply(Active).unwrap(), Suspended);
    assert_eq!(Suspend.apply(Flagged).unwrap(), Suspended);
    assert_eq!(Resume.apply(Flagged).unwrap(), Active);
    assert_eq!(Resume.apply(Suspended).unwrap(), Active);
    assert!(matches!(
        Suspend.apply(Suspended),
        Err(ResellerError::Unchanged(Suspended))
    ));
    assert!(matches!(
        Resume.apply(Active),
        Err(ResellerError::Unchanged(Active))
    ));
}
