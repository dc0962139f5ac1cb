//! The verification form as data, and its mapping to and from the application payload. Every
//! input is named by the payload's own dotted path (`individual.address.city`,
//! `organization.beneficial_owners[1].ownership_percent`), the same path the payload's
//! validation names in its field errors, so a refusal lands next to the input it is about. Pure:
//! the handlers pass the form's pairs in and the services' answers out.

use std::collections::BTreeMap;

use computegate_kyc::verification::{ApplicantKind, ApplicationPayload};
use serde_json::{Map, Value};

use crate::web::FormErrors;

/// Most beneficial owners the form takes (four owners of 25 % each is the most there can be).
pub(crate) const MAX_OWNERS: usize = 4;

/// One input of the form.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// The payload path, used as the input's name.
    pub(crate) name: String,
    /// The label.
    pub(crate) label: &'static str,
    /// `text`, `date`, `number`, `textarea` or `select`.
    pub(crate) kind: &'static str,
    /// A hint under the label (empty: none).
    pub(crate) hint: &'static str,
    /// For selects: `(value, text)` pairs.
    pub(crate) options: Vec<(String, String)>,
    /// The value shown.
    pub(crate) value: String,
}

/// A fieldset.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// Its legend.
    pub(crate) legend: String,
    /// Its inputs.
    pub(crate) fields: Vec<Field>,
}

/// Payload paths that hold whole numbers.
const INTEGERS: [&str; 1] = ["expected_peak_accelerators"];
/// Payload paths that hold yes/no answers.
const BOOLEANS: [&str; 3] = [
    "organization.reseller",
    "intended_use.biological_sequence_data",
    "intended_use.model_export",
];

/// The form's sections for an applicant of `kind`, filled with `values` (payload path → text);
/// `tiers` are the `(name, description)` of the tiers that may be applied for.
pub(crate) fn sections(
    kind: ApplicantKind,
    tiers: &[(String, String)],
    values: &BTreeMap<String, String>,
) -> Vec<Section> {
    let mut out = Vec::new();
    match kind {
        ApplicantKind::Individual => out.push(person("individual", "You".into(), values)),
        ApplicantKind::Organization => {
            out.push(organization(values));
            out.push(person(
                "organization.representative",
                "The person acting for the organization".into(),
                values,
            ));
            let owners = owner_count(values);
            for i in 0..(owners + 1).min(MAX_OWNERS) {
                let at = format!("organization.beneficial_owners[{i}]");
                let mut s = person(
                    &at,
                    format!("Beneficial owner {} (25 % or more)", i + 1),
                    values,
                );
                if i == owners {
                    s.legend.push_str(" — leave empty if there is none");
                }
                s.fields.push(field(
                    format!("{at}.ownership_percent"),
                    "Share owned, in per cent",
                    "number",
                    "Between 25 and 100.",
                    values,
                ));
                out.push(s);
            }
        }
    }
    out.push(intended_use(tiers, values));
    out
}

/// The payload typed into the form (`pairs` as posted), for an applicant of `kind`; a value
/// that is not a number or a yes/no where one is needed is refused next to its input. Empty
/// inputs are left out, so a draft may be saved half-filled.
pub(crate) fn payload(
    kind: ApplicantKind,
    pairs: &[(String, String)],
) -> Result<ApplicationPayload, FormErrors> {
    let mut doc = Value::Object(Map::new());
    let mut errors = FormErrors::new();
    for (name, text) in pairs {
        let text = text.trim();
        if text.is_empty() || !is_payload_path(name) {
            continue;
        }
        let value = if INTEGERS.contains(&name.as_str()) {
            match text.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    errors.add(name, "Enter a whole number, like 64.");
                    continue;
                }
            }
        } else if name == "expected_total_flop" || name.ends_with(".ownership_percent") {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Value::from(f),
                _ => {
                    errors.add(name, "Enter a number, like 40 or 1e22.");
                    continue;
                }
            }
        } else if BOOLEANS.contains(&name.as_str()) {
            match text {
                "yes" => Value::Bool(true),
                "no" => Value::Bool(false),
                _ => {
                    errors.add(name, "Choose yes or no.");
                    continue;
                }
            }
        } else {
            Value::String(text.to_owned())
        };
        set_path(&mut doc, name, value);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(owners) = doc
        .pointer_mut("/organization/beneficial_owners")
        .and_then(Value::as_array_mut)
    {
        // Empty slots between filled ones are simply not owners.
        owners.retain(|o| !o.is_null());
    }
    if let Value::Object(map) = &mut doc {
        let kind = match kind {
            ApplicantKind::Individual => "individual",
            ApplicantKind::Organization => "organization",
        };
        map.insert("kind".into(), Value::from(kind));
    }
    serde_json::from_value(doc).map_err(|e| {
        let mut errors = FormErrors::new();
        errors.add("kind", format!("The form could not be read: {e}"));
        errors
    })
}

/// The payload as form values (payload path → text).
pub(crate) fn values(payload: &ApplicationPayload) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(doc) = serde_json::to_value(payload) {
        flatten("", &doc, &mut out);
    }
    out.remove("kind");
    out
}

/// Values from the posted pairs as they were typed (to show a refused form again).
pub(crate) fn typed(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    (pairs.iter())
        .filter(|(name, _)| is_payload_path(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn person(at: &str, legend: String, values: &BTreeMap<String, String>) -> Section {
    let f = |name: &str| format!("{at}.{name}");
    let id_types = options(&[
        ("passport", "Passport"),
        ("national_id", "National identity card"),
        ("driving_licence", "Driving licence"),
    ]);
    let mut id_type = field(
        f("id_document.type"),
        "Identity document",
        "select",
        "",
        values,
    );
    id_type.options = id_types;
    Section {
        legend,
        fields: vec![
            field(f("legal_name"), "Full legal name", "text", "", values),
            field(
                f("date_of_birth"),
                "Date of birth",
                "date",
                "As YYYY-MM-DD.",
                values,
            ),
            field(
                f("nationality"),
                "Nationality",
                "text",
                COUNTRY_HINT,
                values,
            ),
            field(
                f("phone"),
                "Phone",
                "text",
                "International form, like +49 30 1234567.",
                values,
            ),
            field(
                f("address.line1"),
                "Address",
                "text",
                "Street and number.",
                values,
            ),
            field(
                f("address.line2"),
                "Address line 2 (optional)",
                "text",
                "",
                values,
            ),
            field(f("address.city"), "City", "text", "", values),
            field(f("address.postal_code"), "Postal code", "text", "", values),
            field(
                f("address.country"),
                "Country of residence",
                "text",
                COUNTRY_HINT,
                values,
            ),
            id_type,
            field(
                f("id_document.number"),
                "Document number",
                "text",
                "",
                values,
            ),
            field(
                f("id_document.issuing_country"),
                "Issuing country",
                "text",
                COUNTRY_HINT,
                values,
            ),
        ],
    }
}

fn organization(values: &BTreeMap<String, String>) -> Section {
    let f = |name: &str| format!("organization.{name}");
    let mut reseller = field(
        f("reseller"),
        "Do you resell compute to your own customers?",
        "select",
        "",
        values,
    );
    reseller.options = yes_no();
    Section {
        legend: "The organization".into(),
        fields: vec![
            field(f("legal_name"), "Registered legal name", "text", "", values),
            field(
                f("registration_number"),
                "Company registration number",
                "text",
                "",
                values,
            ),
            field(
                f("jurisdiction"),
                "Country of registration",
                "text",
                COUNTRY_HINT,
                values,
            ),
            field(
                f("address.line1"),
                "Registered address",
                "text",
                "Street and number.",
                values,
            ),
            field(
                f("address.line2"),
                "Address line 2 (optional)",
                "text",
                "",
                values,
            ),
            field(f("address.city"), "City", "text", "", values),
            field(f("address.postal_code"), "Postal code", "text", "", values),
            field(
                f("address.country"),
                "Country",
                "text",
                COUNTRY_HINT,
                values,
            ),
            field(
                f("headquarters_country"),
                "Headquarters country",
                "text",
                COUNTRY_HINT,
                values,
            ),
            field(
                f("ultimate_parent_country"),
                "Country of the ultimate parent company",
                "text",
                COUNTRY_HINT,
                values,
            ),
            reseller,
        ],
    }
}

fn intended_use(tiers: &[(String, String)], values: &BTreeMap<String, String>) -> Section {
    let mut tier = field(
        "requested_tier".into(),
        "Tier applied for",
        "select",
        "",
        values,
    );
    tier.options = std::iter::once((String::new(), "Choose a tier".to_owned()))
        .chain(tiers.iter().map(|(n, d)| (n.clone(), format!("{n} — {d}"))))
        .collect();
    let mut category = field(
        "intended_use.category".into(),
        "What is the compute for?",
        "select",
        "",
        values,
    );
    category.options = options(&[
        ("research", "Research"),
        ("model_training", "Model training"),
        ("fine_tuning", "Fine-tuning"),
        ("inference", "Inference"),
        ("evaluation", "Evaluation"),
        ("other", "Other"),
    ]);
    let mut bio = field(
        "intended_use.biological_sequence_data".into(),
        "Will you train on biological sequence data?",
        "select",
        "",
        values,
    );
    bio.options = yes_no();
    let mut export = field(
        "intended_use.model_export".into(),
        "Will you export the trained model's weights?",
        "select",
        "",
        values,
    );
    export.options = yes_no();
    Section {
        legend: "Your application".into(),
        fields: vec![
            tier,
            category,
            field(
                "intended_use.description".into(),
                "Describe what you will do",
                "textarea",
                "A few sentences; up to 2000 characters.",
                values,
            ),
            bio,
            export,
            field(
                "expected_peak_accelerators".into(),
                "Most accelerators at once",
                "number",
                "A whole number, like 64.",
                values,
            ),
            field(
                "expected_total_flop".into(),
                "Total compute expected, in FLOP",
                "text",
                "A number, like 1e22.",
                values,
            ),
        ],
    }
}

const COUNTRY_HINT: &str = "Two-letter country code, like DE or US.";

fn field(
    name: String,
    label: &'static str,
    kind: &'static str,
    hint: &'static str,
    values: &BTreeMap<String, String>,
) -> Field {
    let value = values.get(&name).cloned().unwrap_or_default();
    Field {
        name,
        label,
        kind,
        hint,
        options: Vec::new(),
        value,
    }
}

fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    std::iter::once(("", "Choose"))
        .chain(pairs.iter().copied())
        .map(|(v, t)| (v.to_owned(), t.to_owned()))
        .collect()
}

fn yes_no() -> Vec<(String, String)> {
    options(&[("yes", "Yes"), ("no", "No")])
}

/// How many beneficial owners `values` hold.
fn owner_count(values: &BTreeMap<String, String>) -> usize {
    (0..MAX_OWNERS)
        .take_while(|i| {
            let prefix = format!("organization.beneficial_owners[{i}].");
            values.keys().any(|k| k.starts_with(&prefix))
        })
        .count()
}

/// Whether `name` is an input of the form (anything else posted is ignored): letters,
/// digits, `_`, dots, and owner indexes below [`MAX_OWNERS`].
fn is_payload_path(name: &str) -> bool {
    name != "csrf"
        && !name.is_empty()
        && name.split('.').all(|seg| match segment(seg) {
            Some((key, index)) => {
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                    && index.is_none_or(|i| i < MAX_OWNERS)
            }
            None => false,
        })
}

/// `name` or `name[3]`.
fn segment(seg: &str) -> Option<(&str, Option<usize>)> {
    match seg.split_once('[') {
        None => Some((seg, None)),
        Some((key, rest)) => {
            let index = rest.strip_suffix(']')?.parse().ok()?;
            Some((key, Some(index)))
        }
    }
}

/// Sets `value` at dotted `path` in `doc`, creating objects and array slots on the way.
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    let segments: Vec<&str> = path.split('.').collect();
    for (n, seg) in segments.iter().enumerate() {
        let last = n + 1 == segments.len();
        let Some((key, index)) = segment(seg) else {
            return;
        };
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else { return };
        let slot = map.entry(key.to_owned()).or_insert(Value::Null);
        at = match index {
            None => slot,
            Some(i) => {
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let Value::Array(items) = slot else { return };
                if items.len() <= i {
                    items.resize(i + 1, Value::Null);
                }
                &mut items[i]
            }
        };
        if last {
            *at = value;
            return;
        }
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Bool(b) => {
            out.insert(prefix.to_owned(), if *b { "yes" } else { "no" }.to_owned());
        }
        Value::Number(n) => {
            out.insert(prefix.to_owned(), n.to_string());
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_organization_form_round_trips_through_the_payload() {
        let posted = pairs(&[
            ("csrf", "x"),
            ("organization.legal_name", "Acme <b>GmbH</b>"),
            ("organization.reseller", "no"),
            ("organization.beneficial_owners[0].legal_name", "Ada"),
            ("organization.beneficial_owners[0].ownership_percent", "60"),
            ("organization.beneficial_owners[2].legal_name", "Bo"),
            ("organization.beneficial_owners[1].legal_name", ""),
            ("expected_peak_accelerators", "64"),
            ("expected_total_flop", "1e22"),
            ("intended_use.model_export", "yes"),
            ("organization.beneficial_owners[9].legal_name", "too many"),
            ("unknown field!", "ignored"),
        ]);
        let p = payload(ApplicantKind::Organization, &posted).unwrap();
        let org = p.organization.as_ref().unwrap();
        assert_eq!(org.legal_name.as_deref(), Some("Acme <b>GmbH</b>"));
        assert_eq!(org.reseller, Some(false));
        let owners: Vec<_> = org
            .beneficial_owners
            .iter()
            .map(|o| o.person.legal_name.clone())
            .collect();
        assert_eq!(owners, vec![Some("Ada".into()), Some("Bo".into())]);
        assert_eq!(org.beneficial_owners[0].ownership_percent, Some(60.0));
        assert_eq!(p.expected_peak_accelerators, Some(64));
        assert_eq!(p.expected_total_flop, Some(1e22));
        let v = values(&p);
        assert_eq!(v["organization.beneficial_owners[1].legal_name"], "Bo");
        assert_eq!(v["intended_use.model_export"], "yes");
        assert_eq!(v["expected_total_flop"].parse::<f64>(), Ok(1e22));
        assert!(!v.contains_key("kind"));
        // Two owners on file: a third, empty slot is offered.
        let s = sections(ApplicantKind::Organization, &[], &v);
        let legends: Vec<&str> = s.iter().map(|s| s.legend.as_str()).collect();
        assert!(
            legends.iter().any(|l| l.starts_with("Beneficial owner 3")),
            "{legends:?}"
        );
        assert!(
            !legends.iter().any(|l| l.starts_with("Beneficial owner 4")),
            "{legends:?}"
        );
    }

    #[test]
    fn numbers_and_answers_that_do_not_parse_are_refused_at_their_input() {
        let posted = pairs(&[
            ("expected_peak_accelerators", "lots"),
            ("intended_use.model_export", "maybe"),
            ("individual.legal_name", "Ada"),
        ]);
        let errors = payload(ApplicantKind::Individual, &posted).unwrap_err();
        assert!(errors.get("expected_peak_accelerators").is_some());
        assert!(errors.get("intended_use.model_export").is_some());
        assert!(errors.get("individual.legal_name").is_none());
    }

    #[test]
    fn an_individual_form_has_no_organization_sections() {
        let s = sections(ApplicantKind::Individual, &[], &BTreeMap::new());
        let names: Vec<&str> = s
            .iter()
            .flat_map(|s| s.fields.iter().map(|f| f.name.as_str()))
            .collect();
        assert!(names.contains(&"individual.id_document.number"));
        assert!(!names.iter().any(|n| n.starts_with("organization")));
    }
}
