//! Fuzzes the reading of partners' STIX 2.1 incident bundles and of STIX patterns: arbitrary
//! bytes must give a bundle or a typed refusal, never a panic, a hang or unbounded memory.
//!
//! The first byte picks the target: a whole bundle, or one pattern (the rest as UTF-8, lossy).
//! Every indicator a bundle yields (from an indicator's pattern or an observed-data's
//! cyber-observable) must also survive being written back as a pattern, and as an observable,
//! and read again unchanged.

#![no_main]

use computegate_kyc::incidents::observables;
use computegate_kyc::incidents::pattern::{self, PatternValue};
use computegate_kyc::incidents::stix_import::parse_bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        if let Ok(bundle) = parse_bundle(rest) {
            for indicator in &bundle.indicators {
                if let PatternValue::Raw(value) = &indicator.value {
                    let written = pattern::write(value, false);
                    assert_eq!(pattern::read(&written), Some(indicator.value.clone()));
                    assert_eq!(
                        observables::read(&observables::write(value)).as_ref(),
                        Some(value)
                    );
                }
            }
        }
    } else {
        let _ = pattern::read(&String::from_utf8_lossy(rest));
    }
});
