//! Property tests of the policy parser: arbitrary text never panics, and small edits of the
//! shipped policy either load or fail with an error that names a key.

use computegate_policy::{Policy, PolicyError};
use proptest::prelude::*;

const DEFAULT: &str = include_str!("../../deploy/policy/default.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = Policy::from_toml(&text);
    }

    /// Replacing any one number of the shipped policy with another value never panics, and a
    /// rejection always names a key path.
    #[test]
    fn edited_numbers_fail_with_a_key(
        pick in 0usize..10_000,
        value in prop_oneof![
            Just("-1".to_string()), Just("0".to_string()), Just("nan".to_string()),
            Just("inf".to_string()), Just("1e400".to_string()), Just("\"x\"".to_string()),
            Just("[]".to_string()), any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:e}")),
        ],
    ) {
        let spots: Vec<usize> = DEFAULT
            .match_indices(" = ")
            .map(|(i, _)| i + 3)
            .filter(|&i| DEFAULT[i..].starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        let start = spots[pick % spots.len()];
        let end = start + DEFAULT[start..].find([',', ' ', '\n', '}']).unwrap();
        let edited = format!("{}{}{}", &DEFAULT[..start], value, &DEFAULT[end..]);
        match Policy::from_toml(&edited) {
            Ok(_) => {}
            Err(PolicyError::Invalid { key, .. }) => prop_assert!(!key.is_empty()),
            Err(PolicyError::Syntax(m)) => prop_assert!(!m.is_empty()),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
