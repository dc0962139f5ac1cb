//! Reading a partner's STIX 2.1 bundle: untrusted input, so it is size-limited before parsing
//! ([`MAX_BUNDLE_BYTES`], [`MAX_OBJECTS`]), every refusal is a [`StixError`] that quotes none of
//! the input, and nothing panics on any bytes (a property test here, and the
//! `incident_bundles` fuzz target).
//!
//! What is kept of a bundle is what matching needs: each `indicator` whose STIX pattern is one
//! of the shapes [`super::pattern::read`] knows, with the partner's context — the name of the
//! `identity` that created it (`created_by_ref`, else the bundle's only identity), and the
//! description of the incident it `indicates` (a `relationship`), else of a `report` naming it,
//! else its own description or name. Other indicators are counted as skipped.
//!
//! The evidence is read too: each cyber-observable an `observed-data` names that
//! [`super::observables::read`] knows (an authority-style bundle carries addresses, domains,
//! document digests in clear) is matched like an indicator, under the observable's id, with the
//! context of its `observed-data` (the incident it is `related-to`, a report naming it, its own
//! text). A value an indicator of the bundle already states is read once, as the indicator.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::observables;
use super::pattern::{self, PatternValue};

/// Largest bundle read, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 8 * 1024 * 1024;
/// Most objects one bundle may hold.
pub const MAX_OBJECTS: usize = 50_000;
/// Longest partner name kept, in characters.
const MAX_PARTNER_CHARS: usize = 200;
/// Longest context kept, in characters.
const MAX_CONTEXT_CHARS: usize = 500;
/// Longest STIX id accepted (`indicator--` and a UUID are 47).
const MAX_ID_BYTES: usize = 128;

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StixError {
    /// Over [`MAX_BUNDLE_BYTES`].
    #[error("the bundle is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not JSON, or not an object of the bundle's shape.
    #[error("the bundle is not valid JSON of a STIX bundle (line {line}, column {column})")]
    NotJson {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// JSON, but not a STIX bundle.
    #[error("not a STIX bundle: {0}")]
    NotABundle(&'static str),
    /// Over [`MAX_OBJECTS`].
    #[error("the bundle has more than {limit} objects")]
    TooManyObjects {
        /// The limit.
        limit: usize,
    },
}

/// What matching needs of a partner's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerBundle {
    /// The bundle's id.
    pub id: String,
    /// Ids of the bundle's `identity` objects (to recognise our own export).
    pub identity_ids: Vec<String>,
    /// The indicators we can match.
    pub indicators: Vec<PartnerIndicator>,
    /// Indicators skipped: a pattern type or shape we do not read.
    pub skipped: usize,
}

/// One indicator of a partner's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerIndicator {
    /// Its STIX id.
    pub stix_id: String,
    /// The partner (name of the identity that created it).
    pub partner: String,
    /// What it indicates.
    pub value: PatternValue,
    /// The partner's context (their incident's description, or the indicator's).
    pub context: String,
}

#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    objects: Vec<Value>,
}

/// An indicator (or an observable) before its context is resolved.
struct Pending<'a> {
    /// Its STIX id.
    id: &'a str,
    /// The object whose relationships and reports give the context: the indicator itself, or
    /// the `observed-data` naming the observable.
    context_of: &'a str,
    created_by: Option<&'a str>,
    own_text: String,
    value: PatternValue,
}

/// Reads `bytes` as a STIX 2.1 bundle.
pub fn parse_bundle(bytes: &[u8]) -> Result<PartnerBundle, StixError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(StixError::TooLarge {
            limit: MAX_BUNDLE_BYTES,
        });
    }
    let raw: RawBundle = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        // Valid JSON of another shape (`{}`, `[]`, a `type` that is not a string): say what
        // a bundle needs, not that the JSON is broken.
        serde_json::error::Category::Data => StixError::NotABundle(
            "it is not an object with a string `type`, a string `id` and an `objects` array",
        ),
        _ => StixError::NotJson {
            line: e.line(),
            column: e.column(),
        },
    })?;
    if raw.kind != "bundle" {
        return Err(StixError::NotABundle("its type is not `bundle`"));
    }
    if !valid_id(&raw.id, "bundle") {
        return Err(StixError::NotABundle("its id is not `bundle--<uuid>`"));
    }
    if raw.objects.len() > MAX_OBJECTS {
        return Err(StixError::TooManyObjects { limit: MAX_OBJECTS });
    }
    let mut identities: HashMap<&str, &str> = HashMap::new();
    let mut identity_ids = Vec::new();
    // Incident and report descriptions by id; what each indicator points at.
    let mut texts: HashMap<&str, String> = HashMap::new();
    let mut indicates: HashMap<&str, &str> = HashMap::new();
    let mut reported_in: HashMap<&str, &str> = HashMap::new();
    let mut pending = Vec::new();
    let mut observed = Vec::new();
    let mut observables = HashMap::new();
    let mut skipped = 0;
    for object in &raw.objects {
        let kind = str_of(object, "type").unwrap_or_default();
        let Some(id) = str_of(object, "id").filter(|id| valid_id(id, kind)) else {
            skipped += usize::from(kind == "indicator");
            continue;
        };
        match kind {
            "identity" => {
                identity_ids.push(id.to_owned());
                identities.insert(id, str_of(object, "name").unwrap_or_default());
            }
            "incident" | "report" => {
                texts.insert(id, text_of(object));
                if kind == "report" {
                    let refs = object.get("object_refs").and_then(Value::as_array);
                    for r in refs.into_iter().flatten().filter_map(Value::as_str) {
                        reported_in.entry(r).or_insert(id);
                    }
                }
            }
            "relationship" => {
                let rel = str_of(object, "relationship_type");
                if let (Some("indicates" | "related-to"), Some(source), Some(target)) = (
                    rel,
                    str_of(object, "source_ref"),
                    str_of(object, "target_ref"),
                ) {
                    indicates.entry(source).or_insert(target);
                }
            }
            "indicator" => {
                let value = (str_of(object, "pattern_type") == Some("stix"))
                    .then(|| str_of(object, "pattern").and_then(pattern::read))
                    .flatten();
                match value {
                    Some(value) => pending.push(Pending {
                        id,
                        context_of: id,
                        created_by: str_of(object, "created_by_ref"),
                        own_text: text_of(object),
                        value,
                    }),
                    None => skipped += 1,
                }
            }
            "observed-data" => observed.push((id, object)),
            _ => {
                if let Some(value) = observables::read(object) {
                    observables.insert(id, value);
                }
            }
        }
    }
    // The observables each observed-data names, once per observable and per value.
    let mut seen: HashSet<PatternValue> = pending.iter().map(|p| p.value.clone()).collect();
    for (observed_id, object) in observed {
        let refs = object.get("object_refs").and_then(Value::as_array);
        for sco in refs.into_iter().flatten().filter_map(Value::as_str) {
            let Some((&sco, value)) = observables.get_key_value(sco) else {
                continue;
            };
            let value = PatternValue::Raw(value.clone());
            if seen.insert(value.clone()) {
                pending.push(Pending {
                    id: sco,
                    context_of: observed_id,
                    created_by: str_of(object, "created_by_ref"),
                    own_text: text_of(object),
                    value,
                });
            }
        }
    }
    let only_identity = match identities.len() {
        1 => identities.values().next().copied(),
        _ => None,
    };
    let indicators = pending
        .into_iter()
        .map(|p| {
            let partner = p
                .created_by
                .and_then(|c| identities.get(c).copied())
                .or(only_identity)
                .filter(|n| !n.trim().is_empty())
                .unwrap_or("unnamed partner");
            let context = [indicates.get(p.context_of), reported_in.get(p.context_of)]
                .into_iter()
                .flatten()
                .filter_map(|target| texts.get(target))
                .find(|t| !t.is_empty())
                .cloned()
                .unwrap_or(p.own_text);
            PartnerIndicator {
                stix_id: p.id.to_owned(),
                partner: clean(partner, MAX_PARTNER_CHARS),
                value: p.value,
                context,
            }
        })
        .collect();
    Ok(PartnerBundle {
        id: raw.id,
        identity_ids,
        indicators,
        skipped,
    })
}

fn str_of<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// An object's description, else its name, cleaned and cut to [`MAX_CONTEXT_CHARS`].
fn text_of(object: &Value) -> String {
    let text = str_of(object, "description")
        .filter(|d| !d.trim().is_empty())
        .or_else(|| str_of(object, "name"))
        .unwrap_or_default();
    clean(text, MAX_CONTEXT_CHARS)
}

/// `text` without control characters, trimmed, at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    let kept: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    kept.trim().to_owned()
}

/// `<kind>--<uuid>`, bounded.
fn valid_id(id: &str, kind: &str) -> bool {
    id.len() <= MAX_ID_BYTES
        && id
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix("--"))
            .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::indicators::{Indicator, IndicatorKind};
    use proptest::strategy::Strategy as _;
    use serde_json::json;

    const IDENTITY: &str = "identity--11111111-1111-4111-8111-111111111111";
    const INCIDENT: &str = "incident--22222222-2222-4222-8222-222222222222";
    const IND_A: &str = "indicator--33333333-3333-4333-8333-333333333333";
    const IND_B: &str = "indicator--44444444-4444-4444-8444-444444444444";

    fn partner_bundle() -> Value {
        json!({
            "type": "bundle",
            "id": "bundle--55555555-5555-4555-8555-555555555555",
            "objects": [
                {"type": "identity", "id": IDENTITY, "name": "Partner\nCloud"},
                {"type": "incident", "id": INCIDENT, "name": "fraud", "description": "card testing ring"},
                {"type": "indicator", "id": IND_A, "created_by_ref": IDENTITY, "pattern_type": "stix",
                 "pattern": "[ipv4-addr:value = '198.51.100.9']", "name": "ip"},
                {"type": "relationship", "id": "relationship--66666666-6666-4666-8666-666666666666",
                 "relationship_type": "indicates", "source_ref": IND_A, "target_ref": INCIDENT},
                {"type": "indicator", "id": IND_B, "pattern_type": "stix",
                 "pattern": "[email-addr:value LIKE '%@bad.example']", "description": "sign-ups"},
                {"type": "indicator", "id": "indicator--77777777-7777-4777-8777-777777777777",
                 "pattern_type": "sigma", "pattern": "title: x"},
                {"type": "indicator", "id": "not-an-id", "pattern_type": "stix",
                 "pattern": "[ipv4-addr:value = '198.51.100.10']"},
                {"type": "malware", "id": "malware--88888888-8888-4888-8888-888888888888"}
            ]
        })
    }

    #[test]
    fn indicators_come_with_the_partners_context() {
        let b = parse_bundle(partner_bundle().to_string().as_bytes()).unwrap();
        assert_eq!(b.identity_ids, [IDENTITY]);
        assert_eq!(
            b.skipped, 2,
            "the sigma indicator and the one with a bad id"
        );
        assert_eq!(b.indicators.len(), 2);
        let a = &b.indicators[0];
        assert_eq!(a.stix_id, IND_A);
        assert_eq!(a.partner, "Partner Cloud", "control characters dropped");
        assert_eq!(
            a.context, "card testing ring",
            "from the incident it indicates"
        );
        assert_eq!(
            a.value,
            PatternValue::Raw(Indicator::parse(IndicatorKind::Ipv4, "198.51.100.9").unwrap())
        );
        let b2 = &b.indicators[1];
        assert_eq!(b2.partner, "Partner Cloud", "the bundle's only identity");
        assert_eq!(b2.context, "sign-ups", "its own description");
    }

    #[test]
    fn observables_of_observed_data_are_matched_too() {
        const OBSERVED: &str = "observed-data--99999999-9999-4999-8999-999999999999";
        const IP: &str = "ipv4-addr--aaaaaaaa-aaaa-5aaa-8aaa-aaaaaaaaaaaa";
        const SAME_AS_A: &str = "ipv4-addr--bbbbbbbb-bbbb-5bbb-8bbb-bbbbbbbbbbbb";
        const URL: &str = "url--cccccccc-cccc-5ccc-8ccc-cccccccccccc";
        let mut bundle = partner_bundle();
        let objects = bundle["objects"].as_array_mut().unwrap();
        objects.extend([
            json!({"type": "observed-data", "id": OBSERVED, "created_by_ref": IDENTITY,
                   "object_refs": [IP, SAME_AS_A, URL, IP, "ipv4-addr--missing"]}),
            json!({"type": "relationship", "id": "relationship--dddddddd-dddd-4ddd-8ddd-dddddddddddd",
                   "relationship_type": "related-to", "source_ref": OBSERVED, "target_ref": INCIDENT}),
            json!({"type": "ipv4-addr", "id": IP, "value": "192.0.2.44"}),
            json!({"type": "ipv4-addr", "id": SAME_AS_A, "value": "198.51.100.9"}),
            json!({"type": "url", "id": URL, "value": "https://x.example/"}),
            // An observable no observed-data names is not evidence of anything.
            json!({"type": "ipv4-addr", "id": "ipv4-addr--eeeeeeee-eeee-5eee-8eee-eeeeeeeeeeee",
                   "value": "192.0.2.45"}),
        ]);
        let b = parse_bundle(bundle.to_string().as_bytes()).unwrap();
        assert_eq!(b.skipped, 2, "observables are not skipped indicators");
        assert_eq!(b.indicators.len(), 3, "{:?}", b.indicators);
        let sco = &b.indicators[2];
        assert_eq!(sco.stix_id, IP);
        assert_eq!(sco.partner, "Partner Cloud");
        assert_eq!(
            sco.context, "card testing ring",
            "from the related incident"
        );
        assert_eq!(
            sco.value,
            PatternValue::Raw(Indicator::parse(IndicatorKind::Ipv4, "192.0.2.44").unwrap())
        );
    }

    #[test]
    fn refusals_name_no_content() {
        let big = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert_eq!(
            parse_bundle(&big),
            Err(StixError::TooLarge {
                limit: MAX_BUNDLE_BYTES
            })
        );
        assert!(matches!(
            parse_bundle(b"{\"secret\": "),
            Err(StixError::NotJson { .. })
        ));
        // Valid JSON that is not a bundle's shape is named as such, not as broken JSON.
        for shape in ["{}", "[]", "\"bundle\"", "{\"type\": 1, \"id\": \"x\"}"] {
            assert!(
                matches!(
                    parse_bundle(shape.as_bytes()),
                    Err(StixError::NotABundle(_))
                ),
                "{shape}"
            );
        }
        let not = json!({"type": "report", "id": "report--55555555-5555-4555-8555-555555555555"});
        assert!(matches!(
            parse_bundle(not.to_string().as_bytes()),
            Err(StixError::NotABundle(_))
        ));
        let bad_id = json!({"type": "bundle", "id": "bundle--x"});
        assert!(matches!(
            parse_bundle(bad_id.to_string().as_bytes()),
            Err(StixError::NotABundle(_))
        ));
        let many = json!({
            "type": "bundle",
            "id": "bundle--55555555-5555-4555-8555-555555555555",
            "objects": vec![json!(0); MAX_OBJECTS + 1],
        });
        assert_eq!(
            parse_bundle(many.to_string().as_bytes()),
            Err(StixError::TooManyObjects { limit: MAX_OBJECTS })
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            "{{\"type\":\"bundle\",\"id\":\"x\",\"objects\":[{}{}]}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            parse_bundle(deep.as_bytes()),
            Err(StixError::NotJson { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_refused_or_read(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_bundle(&bytes);
        }

        #[test]
        fn any_objects_are_refused_or_read(objects in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(json!({"type": "indicator", "id": IND_A})),
                "\\PC{0,40}".prop_map(|p| json!({"type": "indicator", "id": IND_B, "pattern_type": "stix", "pattern": p})),
                "\\PC{0,40}".prop_map(|n| json!({"type": "identity", "id": IDENTITY, "name": n})),
                proptest::strategy::Just(json!({"type": "relationship", "relationship_type": "indicates", "source_ref": 1})),
                proptest::strategy::Just(json!(null)),
            ], 0..20)) {
            let bundle = json!({"type": "bundle", "id": "bundle--55555555-5555-4555-8555-555555555555", "objects": objects});
            proptest::prop_assert!(parse_bundle(bundle.to_string().as_bytes()).is_ok());
        }
    }
}
