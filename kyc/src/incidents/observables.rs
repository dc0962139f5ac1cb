//! STIX 2.1 cyber-observable objects (SCOs) for our indicator types, both ways: the SCO an
//! export's `observed-data` points at for an indicator value, and reading a partner's SCO back
//! into an indicator we can match.
//!
//! | type | SCO |
//! |---|---|
//! | ipv4 / ipv6 | `ipv4-addr` / `ipv6-addr` with `value` |
//! | email_domain | `domain-name` with `value` |
//! | document_sha256 | `file` with `hashes.SHA-256` |
//! | payment_fingerprint | custom `x-computegate-payment-instrument` with `fingerprint` |
//! | api_key_id | custom `x-computegate-api-key` with `key_id` |
//!
//! STIX has no SCO for a payment instrument or an API key, so those two are custom objects
//! (STIX 2.1 §11.1: an `x-` type; the same types our patterns already name, so a pattern and
//! its observable agree). SCO ids are deterministic as STIX 2.1 §2.9 asks: UUID v5 under the
//! SCO namespace of the JSON of the type's id-contributing properties (`value`, `hashes`; for
//! our custom types their one property), so equal values from any producer get equal ids.
//!
//! An SCO carries its value in clear: which values an export may carry as SCOs is
//! [`super::stix_export`]'s decision (personal values only for authorities).

use serde_json::{Value, json};
use uuid::Uuid;

use super::indicators::{Indicator, IndicatorKind};
use super::pattern::{API_KEY, PAYMENT};
use super::stix_export::uuid_v5;

/// The namespace of deterministic SCO ids (STIX 2.1 §2.9).
const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// The SCO type and the id-contributing properties of `indicator`.
fn type_and_properties(indicator: &Indicator) -> (&'static str, Value) {
    let v = indicator.value();
    match indicator.kind() {
        IndicatorKind::Ipv4 => ("ipv4-addr", json!({"value": v})),
        IndicatorKind::Ipv6 => ("ipv6-addr", json!({"value": v})),
        IndicatorKind::EmailDomain => ("domain-name", json!({"value": v})),
        IndicatorKind::DocumentSha256 => ("file", json!({"hashes": {"SHA-256": v}})),
        IndicatorKind::PaymentFingerprint => (PAYMENT, json!({"fingerprint": v})),
        IndicatorKind::ApiKeyId => (API_KEY, json!({"key_id": v})),
    }
}

/// The SCO of `indicator`, with its deterministic id.
pub fn write(indicator: &Indicator) -> Value {
    let (kind, properties) = type_and_properties(indicator);
    // serde_json writes object keys sorted and without whitespace: the JCS (RFC 8785) form
    // STIX names for the id, for the ASCII values our canonical forms are.
    let id = format!(
        "{kind}--{}",
        uuid_v5(SCO_NAMESPACE, &properties.to_string())
    );
    let mut sco = json!({"type": kind, "spec_version": "2.1", "id": id});
    if let (Some(sco), Value::Object(properties)) = (sco.as_object_mut(), properties) {
        sco.extend(properties);
    }
    sco
}

/// The indicator an SCO states, when it is one of the types above with a valid value; `None`
/// for any other object (a partner's `url`, a `file` without a SHA-256, a bad address, …).
pub fn read(object: &Value) -> Option<Indicator> {
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let (kind, value) = match text("type")? {
        "ipv4-addr" => (
            IndicatorKind::Ipv4,
            text("value").map(|v| v.strip_suffix("/32").unwrap_or(v))?,
        ),
        "ipv6-addr" => (
            IndicatorKind::Ipv6,
            text("value").map(|v| v.strip_suffix("/128").unwrap_or(v))?,
        ),
        "domain-name" => (IndicatorKind::EmailDomain, text("value")?),
        "file" => {
            let hashes = object.get("hashes")?;
            let digest = ["SHA-256", "SHA256"]
                .into_iter()
                .find_map(|k| hashes.get(k).and_then(Value::as_str))?;
            (IndicatorKind::DocumentSha256, digest)
        }
        t if t == PAYMENT => (IndicatorKind::PaymentFingerprint, text("fingerprint")?),
        t if t == API_KEY => (IndicatorKind::ApiKeyId, text("key_id")?),
        _ => return None,
    };
    Indicator::parse(kind, value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indicator(kind: IndicatorKind, v: &str) -> Indicator {
        Indicator::parse(kind, v).unwrap()
    }

    #[test]
    fn sco_ids_follow_the_stix_deterministic_rule() {
        // uuid5(00abedb4-…, '{"value":"203.0.113.7"}'), computed independently with Python's
        // `uuid.uuid5`: what python-stix2 gives IPv4Address(value="203.0.113.7").
        let ip = write(&indicator(IndicatorKind::Ipv4, "203.0.113.7"));
        assert_eq!(ip["id"], "ipv4-addr--9ddd739e-87b1-587d-83f2-62ef1130af2f");
        assert_eq!(ip["value"], "203.0.113.7");
        let doc = write(&indicator(IndicatorKind::DocumentSha256, &"AB".repeat(32)));
        assert_eq!(doc["type"], "file");
        assert_eq!(doc["hashes"]["SHA-256"], "ab".repeat(32));
        assert_ne!(
            write(&indicator(IndicatorKind::Ipv4, "203.0.113.8"))["id"],
            ip["id"]
        );
    }

    #[test]
    fn every_type_round_trips() {
        for (kind, v) in [
            (IndicatorKind::Ipv4, "203.0.113.7"),
            (IndicatorKind::Ipv6, "2001:db8::1"),
            (IndicatorKind::EmailDomain, "resold.example"),
            (IndicatorKind::DocumentSha256, &"0f".repeat(32)),
            (IndicatorKind::PaymentFingerprint, "pm_fp_Xt5EWLL9"),
            (IndicatorKind::ApiKeyId, "Ab3dEf7hIj9kLm1n"),
        ] {
            let ind = indicator(kind, v);
            assert_eq!(read(&write(&ind)), Some(ind), "{v}");
        }
    }

    #[test]
    fn partners_scos_are_read_or_left() {
        let ip = json!({"type": "ipv4-addr", "id": "ipv4-addr--x", "value": "198.51.100.9/32"});
        assert_eq!(
            read(&ip),
            Some(indicator(IndicatorKind::Ipv4, "198.51.100.9"))
        );
        let file = json!({"type": "file", "hashes": {"SHA256": "AB".repeat(32)}});
        assert_eq!(
            read(&file),
            Some(indicator(IndicatorKind::DocumentSha256, &"ab".repeat(32)))
        );
        for other in [
            json!({"type": "ipv4-addr", "value": "198.51.100.0/24"}),
            json!({"type": "file", "hashes": {"MD5": "00"}}),
            json!({"type": "url", "value": "https://x.example"}),
            json!({"type": "domain-name", "value": 7}),
            json!(null),
        ] {
            assert_eq!(read(&other), None, "{other}");
        }
    }
}
