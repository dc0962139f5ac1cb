//! Fuzzes the policy parser and validator: any text must load or fail with a `PolicyError`
//! naming a key, never panic.

#![no_main]

use computegate_gateway::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(policy) = Policy::from_toml(text)
    {
        // A valid policy renders its summary and answers lookups.
        let _ = policy.to_string();
        let _ = policy.required_tier_for_job(8, 1e19);
    }
});
