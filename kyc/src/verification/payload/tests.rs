use time::macros::date;

use super::*;

const INDIVIDUAL: &str = include_str!("../../../tests/data/verification/individual.json");
const ORGANIZATION: &str = include_str!("../../../tests/data/verification/organization.json");

fn today() -> Date {
    date!(2030 - 01 - 01)
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn sample_applications_are_valid() {
    for text in [INDIVIDUAL, ORGANIZATION] {
        let p = ApplicationPayload::from_json(text.as_bytes()).unwrap();
        assert_eq!(p.validate(ValidationMode::Submit, today()), vec![]);
    }
    let org = ApplicationPayload::from_json(ORGANIZATION.as_bytes()).unwrap();
    assert_eq!(org.primary_country(), Some("DE"));
    assert_eq!(org.countries(), vec!["DE", "US"]);
    // Round trip through serde keeps the contract's field names.
    let v = serde_json::to_value(&org).unwrap();
    assert_eq!(
        v["organization"]["beneficial_owners"][0]["ownership_percent"],
        60.0
    );
    assert_eq!(
        v["organization"]["representative"]["id_document"]["type"],
        "passport"
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let mut p = ApplicationPayload::from_json(INDIVIDUAL.as_bytes()).unwrap();
    let person = p.individual.as_mut().unwrap();
    person.legal_name = Some("x".repeat(MAX_NAME_CHARS + 1));
    person.date_of_birth = Some("1990-02-30".into());
    person.nationality = Some("gb".into());
    person.address.as_mut().unwrap().country = Some("XX".into());
    person.id_document.as_mut().unwrap().doc_type = Some("library_card".into());
    person.phone = Some("12345".into());
    p.intended_use.as_mut().unwrap().category = Some("mining".into());
    p.expected_total_flop = Some(f64::INFINITY);
    p.payment_fingerprint = Some("has space".into());
    let errors = p.validate(ValidationMode::Submit, today());
    assert_eq!(
        fields(&errors),
        vec![
            "individual.legal_name",
            "individual.date_of_birth",
            "individual.nationality",
            "individual.address.country",
            "individual.id_document.type",
            "individual.phone",
            "payment_fingerprint",
            "intended_use.category",
            "expected_total_flop",
        ]
    );
    assert_eq!(errors[0].code, "too_long");
    assert_eq!(errors[2].code, "not_a_country");
}

#[test]
fn drafts_may_be_incomplete_but_not_wrong() {
    let draft: ApplicationPayload =
        serde_json::from_str(r#"{"kind":"individual","individual":{"legal_name":"A B"}}"#).unwrap();
    assert_eq!(draft.validate(ValidationMode::Draft, today()), vec![]);
    let missing = draft.validate(ValidationMode::Submit, today());
    assert!(fields(&missing).contains(&"requested_tier"));
    assert!(fields(&missing).contains(&"individual.date_of_birth"));
    assert!(missing.iter().all(|e| e.code == "missing"));

    let wrong: ApplicationPayload = serde_json::from_str(
        r#"{"kind":"individual","individual":{"legal_name":"  ","nationality":"Germany"}}"#,
    )
    .unwrap();
    assert_eq!(
        fields(&wrong.validate(ValidationMode::Draft, today())),
        vec!["individual.legal_name", "individual.nationality"]
    );
}

#[test]
fn ages_outside_16_to_120_are_implausible() {
    let mut p = ApplicationPayload::from_json(INDIVIDUAL.as_bytes()).unwrap();
    for (dob, ok) in [
        ("2014-01-01", true),  // exactly 16 today
        ("2014-01-02", false), // 16 tomorrow
        ("1909-01-02", true),
        ("1909-01-01", false), // 121
        ("2031-01-01", false), // future
        ("1990-1-01", false),
        ("１９９０-01-01", false),
    ] {
        p.individual.as_mut().unwrap().date_of_birth = Some(dob.into());
        let errors = p.validate(ValidationMode::Submit, today());
        assert_eq!(errors.is_empty(), ok, "{dob}: {errors:?}");
    }
}

#[test]
fn beneficial_owner_percentages() {
    let mut p = ApplicationPayload::from_json(ORGANIZATION.as_bytes()).unwrap();
    let org = p.organization.as_mut().unwrap();
    org.beneficial_owners[0].ownership_percent = Some(80.0);
    let errors = p.validate(ValidationMode::Submit, today());
    assert_eq!(fields(&errors), vec!["organization.beneficial_owners"]);

    let org = p.organization.as_mut().unwrap();
    org.beneficial_owners[0].ownership_percent = Some(10.0);
    org.beneficial_owners[1].ownership_percent = None;
    let errors = p.validate(ValidationMode::Submit, today());
    assert_eq!(
        fields(&errors),
        vec![
            "organization.beneficial_owners[0].ownership_percent",
            "organization.beneficial_owners[1].ownership_percent"
        ]
    );
}

#[test]
fn kind_and_tier_must_fit() {
    let mut p = ApplicationPayload::from_json(INDIVIDUAL.as_bytes()).unwrap();
    p.requested_tier = Some(Tier::VALIDATED_END_USER.into());
    p.organization = Some(OrganizationDetails::default());
    let errors = p.validate(ValidationMode::Submit, today());
    assert_eq!(fields(&errors), vec!["requested_tier", "organization"]);
    p.requested_tier = Some("unverified".into());
    p.organization = None;
    assert_eq!(
        p.validate(ValidationMode::Submit, today())[0].code,
        "invalid"
    );
}

#[test]
fn wrong_shapes_are_one_error() {
    let errors = ApplicationPayload::from_json(br#"{"kind":"robot"}"#).unwrap_err();
    assert_eq!(fields(&errors), vec!["$"]);
    assert!(ApplicationPayload::from_json(b"[]").is_err());
}

#[test]
fn phones_and_dates() {
    assert!(is_phone("+1 (555) 010-9999"));
    assert!(!is_phone("555 0109999"));
    assert!(!is_phone("+12"));
    assert_eq!(parse_date("2024-02-29"), Some(date!(2024 - 02 - 29)));
    assert_eq!(parse_date("2023-02-29"), None);
    assert_eq!(age_at(date!(2000 - 06 - 15), date!(2030 - 06 - 14)), 29);
    assert_eq!(age_at(date!(2000 - 06 - 15), date!(2030 - 06 - 15)), 30);
}
