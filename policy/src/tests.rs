use std::time::Duration;

use http::Method;

use super::*;

const DEFAULT: &str = include_str!("../../deploy/policy/default.toml");

fn default_policy() -> Policy {
    Policy::from_toml(DEFAULT).expect("the shipped policy is valid")
}

/// The key named by an `Invalid` error for the default policy with `from` replaced by `to`.
fn invalid_key(from: &str, to: &str) -> String {
    assert!(DEFAULT.contains(from), "fixture text `{from}` not found");
    match Policy::from_toml(&DEFAULT.replacen(from, to, 1)) {
        Err(PolicyError::Invalid { key, .. }) => key,
        other => panic!("expected Invalid for `{to}`, got {other:?}"),
    }
}

#[test]
fn shipped_policy_loads_with_lookups() {
    let p = default_policy();
    assert_eq!(p.version(), "2026.1");
    assert_eq!(p.effective_from().to_string(), "2026-01-01");
    assert_eq!(p.max_job_duration(), Duration::from_secs(14 * 86_400));
    assert_eq!(p.tier_rank("unverified"), Some(0));
    assert_eq!(p.tier_rank("validated_end_user"), Some(3));
    assert_eq!(p.tier_rank("nobody"), None);
    assert_eq!(
        p.accelerator("NVIDIA-H100-80GB-HBM3")
            .map(|a| a.type_key.as_str()),
        Some("h100")
    );
    assert_eq!(
        p.accelerator("  nvidia-h100-80gb-hbm3 ")
            .map(|a| a.type_key.as_str()),
        Some("h100"),
        "aliases match case-insensitively"
    );
    assert!(p.accelerator("v100").is_none());
    let (largest, peak) = p.largest_accelerator(Precision::Bf16).unwrap();
    assert_eq!((largest.type_key.as_str(), peak), ("b200", 2250e12));
    assert!(p.is_language_model_kind("TEXT"));
    assert!(!p.is_language_model_kind("biological_sequence"));
    let summary = p.to_string();
    for name in [
        "unverified",
        "identity_verified",
        "us-frontier-1e26",
        "h100",
        "embargoed",
    ] {
        assert!(summary.contains(name), "summary lacks {name}:\n{summary}");
    }
}

#[test]
fn errors_name_the_key_path() {
    let cases = [
        (
            "max_flop_per_run = 1e22",
            "max_flop_per_run = -1.0",
            "tiers[1].max_flop_per_run",
        ),
        (
            "max_flop_per_run = 1e22",
            "max_flop_per_run = nan",
            "tiers[1].max_flop_per_run",
        ),
        (
            "max_flop_per_run = 1e22",
            "max_flop_per_run = \"lots\"",
            "tiers[1].max_flop_per_run",
        ),
        (
            "max_flop_per_run = 1e25",
            "max_flop_per_run = 1e21",
            "tiers[2].max_flop_per_run",
        ),
        (
            "max_accelerators_per_job = 64",
            "max_accelerators_per_job = 4",
            "tiers[1].max_accelerators_per_job",
        ),
        (
            "max_accelerators_per_job = 64",
            "max_accelerators_per_job = 0",
            "tiers[1].max_accelerators_per_job",
        ),
        (
            "name = \"identity_verified\"",
            "name = \"unverified\"",
            "tiers[1].name",
        ),
        (
            "job_submit = true",
            "job_sbumit = true",
            "tiers[0].job_sbumit",
        ),
        (
            "allowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\"]",
            "allowed_methods = [\"GE T\"]",
            "tiers[0].allowed_methods",
        ),
        (
            "window = \"30d\"",
            "window = \"a month\"",
            "tiers[0].window",
        ),
        ("burst = 20", "burst = 0", "tiers[0].rate_limit.burst"),
        (
            "utilization_default = 0.4",
            "utilization_default = 1.5",
            "utilization_default",
        ),
        (
            "max_job_duration = \"14d\"",
            "max_job_duration = \"0s\"",
            "max_job_duration",
        ),
        (
            "effective_from = 2026-01-01",
            "effective_from = \"2026-02-30\"",
            "effective_from",
        ),
        ("flop = 1e25", "flop = 1e22", "thresholds[2].flop"),
        ("flop = 1e26\n", "flop = -1e26\n", "thresholds[3].flop"),
        (
            "label = \"eu-gpai-indicative-1e23\"",
            "label = \"bio-sequence-1e23\"",
            "thresholds[1].label",
        ),
        (
            "action = \"notify\"",
            "action = \"shout\"",
            "thresholds[1].action",
        ),
        ("scope = \"run\"", "scope = []", "thresholds[0].scope"),
        (
            "status = \"in_force\"",
            "status = \"maybe\"",
            "thresholds[2].status",
        ),
        (
            "\"NVIDIA-H200\",",
            "\"NVIDIA-H100-80GB-HBM3\",",
            "accelerators[3].aliases[0]",
        ),
        (
            "peak_flops = { bf16 = 459e12 }",
            "peak_flops = { fp16 = 459e12 }",
            "accelerators[6].peak_flops.bf16",
        ),
        (
            "peak_flops = { bf16 = 459e12 }",
            "peak_flops = { bf16 = inf }",
            "accelerators[6].peak_flops.bf16",
        ),
        (
            "peak_flops = { bf16 = 459e12 }",
            "peak_flops = { bf16 = 459e12, int4 = 1.0 }",
            "accelerators[6].peak_flops.int4",
        ),
        (
            "countries = [\"CU\",",
            "countries = [\"Cuba\",",
            "country_groups.embargoed.countries[0]",
        ),
        (
            "review_groups = [\"high_risk\"]",
            "review_groups = [\"risky\"]",
            "jurisdiction.review_groups[0]",
        ),
        (
            "declared_gap_action = \"review\"",
            "declared_gap_action = \"block\"",
            "declared_gap_action",
        ),
    ];
    for (from, to, key) in cases {
        assert_eq!(invalid_key(from, to), key, "{to}");
    }
}

#[test]
fn messages_read_well() {
    let err = Policy::from_toml(&DEFAULT.replacen(
        "max_flop_per_run = 1e22",
        "max_flop_per_run = -1.0",
        1,
    ))
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "policy key `tiers[1].max_flop_per_run`: must be a positive finite number (got -1)"
    );
    let syntax = Policy::from_toml("version = \n").unwrap_err();
    assert!(
        matches!(&syntax, PolicyError::Syntax(m) if m.contains("line 1")),
        "{syntax}"
    );
    let missing = Policy::from_toml("version = \"1\"\n")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing field"), "{missing}");
}

#[test]
fn route_rules_by_tier() {
    let p = default_policy();
    let ok = |tier, class, method: Method| authorize_route(&p, tier, "jobs", class, &method);
    assert!(ok("unverified", RouteClass::Authenticated, Method::GET).is_ok());
    assert!(
        ok("unverified", RouteClass::JobSubmit, Method::POST).is_ok(),
        "trial jobs"
    );
    let denied = ok("unverified", RouteClass::Authenticated, Method::DELETE).unwrap_err();
    assert_eq!(denied.rule, DenialRule::MethodNotAllowed);
    assert_eq!(denied.tier.as_deref(), Some("unverified"));
    assert_eq!(denied.required_tier.as_deref(), Some("identity_verified"));
    assert!(
        denied.detail.contains("identity_verified"),
        "{}",
        denied.detail
    );
    assert!(
        ok(
            "identity_verified",
            RouteClass::Authenticated,
            Method::DELETE
        )
        .is_ok()
    );
    let unknown = ok("gold", RouteClass::Authenticated, Method::GET).unwrap_err();
    assert_eq!(unknown.rule, DenialRule::UnknownTier);
    assert_eq!(unknown.required_tier.as_deref(), Some("unverified"));
}

#[test]
fn route_lists_restrict_by_name() {
    let text = DEFAULT.replacen(
        "allowed_routes = [\"*\"]\nallowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\"]",
        "allowed_routes = [\"catalog\"]\nallowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\"]",
        1,
    );
    let p = Policy::from_toml(&text).unwrap();
    let get = Method::GET;
    assert!(authorize_route(&p, "unverified", "catalog", RouteClass::Authenticated, &get).is_ok());
    let d = authorize_route(
        &p,
        "unverified",
        "jobs",
        RouteClass::JobSubmit,
        &Method::POST,
    )
    .unwrap_err();
    assert_eq!(d.rule, DenialRule::RouteNotAllowed);
    assert_eq!(d.required_tier.as_deref(), Some("identity_verified"));
    assert_eq!(DenialRule::RouteNotAllowed.as_str(), "tier_route");
}

#[test]
fn jurisdictions() {
    let p = default_policy();
    for code in ["IR", "kp", "UA-43", "UA-40"] {
        let d = authorize_jurisdiction(&p, &["US", code]).unwrap_err();
        assert_eq!(d.rule, DenialRule::DeniedJurisdiction, "{code}");
        assert!(d.detail.contains("embargoed"), "{}", d.detail);
    }
    let ua = authorize_jurisdiction(&p, &["UA", "UA-14"]).unwrap();
    assert_eq!(ua, JurisdictionStanding::default());
    let ru = authorize_jurisdiction(&p, &["RU"]).unwrap();
    assert_eq!(ru.review_groups, vec!["high_risk".to_string()]);
    assert!(ru.frontier_restricted);
    let mo = authorize_jurisdiction(&p, &["MO"]).unwrap();
    assert!(mo.review_groups.is_empty() && mo.frontier_restricted);
    assert_eq!(
        authorize_jurisdiction::<&str>(&p, &[]).unwrap(),
        JurisdictionStanding::default()
    );
}

#[test]
fn required_tier_for_jobs() {
    let p = default_policy();
    let req = |n, flop| p.required_tier_for_job(n, flop).map(|t| t.name.as_str());
    assert_eq!(req(8, 1e19), Some("unverified"));
    assert_eq!(req(9, 1e18), Some("identity_verified"));
    assert_eq!(req(64, 1e22), Some("identity_verified"));
    assert_eq!(req(64, 2e22), Some("organization_verified"));
    assert_eq!(req(4097, 1.0), Some("validated_end_user"));
    assert_eq!(req(8, 1e27), Some("validated_end_user"));
    let get = Method::GET;
    assert_eq!(
        p.required_tier_for_route("jobs", RouteClass::Authenticated, &Method::PUT)
            .map(|t| t.name.as_str()),
        Some("identity_verified")
    );
    assert_eq!(
        p.required_tier_for_route("jobs", RouteClass::Authenticated, &get)
            .map(|t| t.name.as_str()),
        Some("unverified")
    );
}

#[test]
fn revoked_thresholds_are_kept_but_inactive() {
    let p =
        Policy::from_toml(&DEFAULT.replacen("status = \"proposed\"", "status = \"revoked\"", 1))
            .unwrap();
    let th = p
        .thresholds()
        .iter()
        .find(|t| t.label == "us-frontier-1e26")
        .unwrap();
    assert!(!th.is_active());
    assert_eq!(th.strongest_action(), Action::Review);
}

#[test]
fn country_groups_accept_plain_lists() {
    let text = DEFAULT.replacen(
        "[country_groups.high_risk]",
        "[country_groups]\nwatch = [\"fr\"]\n\n[country_groups.high_risk]",
        1,
    );
    let p = Policy::from_toml(&text).unwrap();
    assert_eq!(
        p.country_group("watch").unwrap().countries,
        vec!["FR".to_string()]
    );
    assert!(p.country_group("watch").unwrap().contains("FR-75"));
}

#[test]
fn the_digest_is_the_sha256_of_the_text_and_tells_edits_apart() {
    let p = default_policy();
    assert_eq!(p.digest().len(), 64);
    assert!(
        p.digest()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // SHA-256 of the empty string, as a known value for the encoding.
    assert_eq!(
        text_digest(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let edited = Policy::from_toml(&format!("{DEFAULT}\n# edited\n")).expect("valid");
    assert_eq!(edited.version(), p.version());
    assert_ne!(edited.digest(), p.digest());
}
