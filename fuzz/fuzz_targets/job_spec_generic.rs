//! Fuzzes the `generic` job-spec profile: any body must parse or fail with a `SpecError`, and
//! any parsed spec must estimate or fail with an `EstimateError` — never panic.

#![no_main]

use std::sync::LazyLock;

use computegate_gateway::metering::{Profile, SpecLimits, estimate, parse_job_spec};
use computegate_gateway::policy::Policy;
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    Policy::from_toml(include_str!("../../deploy/policy/default.toml"))
        .expect("the shipped policy is valid")
});

fuzz_target!(|data: &[u8]| {
    // The first byte, when printable, doubles as an X-Computegate-Run header value.
    let header = data
        .first()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| char::from(*b).to_string());
    let limits = SpecLimits::from_policy(&POLICY);
    if let Ok(spec) = parse_job_spec(Profile::Generic, data, header.as_deref(), &limits)
        && let Ok(e) = estimate(&spec, &POLICY)
    {
        assert!(e.hardware_flop.is_finite() && e.hardware_flop >= 0.0);
    }
});
