//! Fuzzes API-key parsing on the two paths an untrusted `cg_<id>_<secret>` takes: the data
//! plane's cheap shape check and key-id extraction (before any lookup or hash), and the strict
//! parser of the key store. Never a panic; and the two must agree: whatever the strict parser
//! accepts, the data plane classifies as an API key with the same key id.

#![no_main]

use computegate_gateway::auth::AuthMethod;
use computegate_gateway::credentials::bearer::{api_key_id, classify};
use computegate_kyc::api_keys::{is_key_id, parse_api_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let shape = classify(text);
    let id = api_key_id(text);
    if let Ok(parsed) = parse_api_key(text) {
        assert_eq!(shape.as_ref().ok(), Some(&AuthMethod::ApiKey), "strict parse, loose refusal");
        assert_eq!(id, Some(parsed.key_id), "the two paths read different key ids");
        assert!(is_key_id(parsed.key_id));
    }
    if matches!(shape, Ok(AuthMethod::ApiKey)) {
        assert!(id.is_some_and(|i| !i.is_empty()));
    }
});
