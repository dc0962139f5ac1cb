use super::*;
use proptest::prelude::*;
use time::Duration;

fn sample_key() -> String {
    format!(
        "cg_{}_{}",
        new_key_id().unwrap(),
        URL_SAFE_NO_PAD.encode(random_bytes::<32>().unwrap())
    )
}

#[test]
fn generated_keys_parse() {
    let key = sample_key();
    let parsed = parse_api_key(&key).unwrap();
    assert_eq!(parsed.key_id.len(), 16);
    assert_eq!(parsed.secret.len(), 43);
    assert!(!format!("{parsed:?}").contains(parsed.secret));
}

#[test]
fn key_ids_are_alphanumeric_and_distinct() {
    let a = new_key_id().unwrap();
    assert!(is_key_id(&a));
    assert_ne!(a, new_key_id().unwrap());
}

#[test]
fn strict_parsing() {
    let good = sample_key();
    let id = &good[3..19];
    let secret = &good[20..];
    let cases = [
        String::new(),
        "cg_".into(),
        good.replacen("cg_", "CG_", 1),
        good.replacen("cg_", "cgr_", 1),
        format!("cg_{id}-{secret}"),
        format!("cg_{}_{secret}", &id[..15]),
        format!("cg_{}!_{secret}", &id[..15]),
        format!("cg_{id}_{}", &secret[..42]),
        format!("cg_{id}_{secret}A"),
        format!("cg_{id}_{}", "=".repeat(43)),
        format!("cg_{}é_{secret}", &id[..14]),
        format!(" {good}"),
        "cg_' OR '1'='1' --".into(),
    ];
    for case in cases {
        assert!(
            matches!(parse_api_key(&case), Err(KeyError::Malformed)),
            "{case:?}"
        );
    }
    // A non-canonical last character (one of the two unused low bits set) is refused too.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pos = alphabet.find(secret.chars().last().unwrap()).unwrap();
    let flipped = char::from(alphabet.as_bytes()[pos ^ 1]);
    let noncanonical = format!("cg_{id}_{}{flipped}", &secret[..42]);
    assert!(matches!(
        parse_api_key(&noncanonical),
        Err(KeyError::Malformed)
    ));
}

#[test]
fn new_key_validation() {
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10_000);
    let ok = NewApiKey {
        name: "CI runner — 東京".into(),
        expires_at: Some(now + Duration::days(30)),
        scopes: vec!["jobs:submit".into(), "jobs.read".into()],
    };
    validate_new_key(&ok, now).unwrap();
    let bad_name = NewApiKey {
        name: " ".into(),
        ..ok.clone()
    };
    assert!(matches!(
        validate_new_key(&bad_name, now),
        Err(KeyError::InvalidName)
    ));
    let long = NewApiKey {
        name: "x".repeat(101),
        ..ok.clone()
    };
    assert!(matches!(
        validate_new_key(&long, now),
        Err(KeyError::InvalidName)
    ));
    let bad_scope = NewApiKey {
        scopes: vec!["Jobs Submit".into()],
        ..ok.clone()
    };
    assert!(matches!(
        validate_new_key(&bad_scope, now),
        Err(KeyError::InvalidScope)
    ));
    let many = NewApiKey {
        scopes: vec!["a".into(); 33],
        ..ok.clone()
    };
    assert!(matches!(
        validate_new_key(&many, now),
        Err(KeyError::InvalidScope)
    ));
    let past = NewApiKey {
        expires_at: Some(now),
        ..ok
    };
    assert!(matches!(
        validate_new_key(&past, now),
        Err(KeyError::ExpiryInPast)
    ));
}

#[test]
fn state_at_time() {
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10_000);
    let key = ApiKey {
        id: new_key_id().unwrap(),
        customer_id: Uuid::now_v7(),
        name: "k".into(),
        scopes: vec![],
        created_at: now,
        expires_at: Some(now + Duration::hours(1)),
        revoked_at: None,
    };
    assert_eq!(key.state(now), KeyState::Active);
    assert_eq!(key.state(now + Duration::hours(1)), KeyState::Expired);
    let revoked = ApiKey {
        revoked_at: Some(now),
        ..key
    };
    assert_eq!(revoked.state(now), KeyState::Revoked);
}

proptest! {
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = parse_api_key(&s);
    }

    #[test]
    fn parse_never_panics_near_valid(
        id in "[A-Za-z0-9_\\-é]{14,18}",
        secret in "[A-Za-z0-9_\\-=+/]{40,46}",
        sep in "[_\\-é]",
    ) {
        let text = format!("cg_{id}{sep}{secret}");
        if let Ok(p) = parse_api_key(&text) {
            prop_assert!(is_key_id(p.key_id));
            prop_assert_eq!(p.secret.len(), 43);
        }
    }

    #[test]
    fn parse_accepts_every_generated_shape(
        id in "[A-Za-z0-9]{16}",
        bytes in proptest::array::uniform32(any::<u8>()),
    ) {
        let text = format!("cg_{id}_{}", URL_SAFE_NO_PAD.encode(bytes));
        let parsed = parse_api_key(&text).unwrap();
        prop_assert_eq!(parsed.key_id, id.as_str());
    }
}
