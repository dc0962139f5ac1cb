//! The STIX 2.1 bundle an incident export writes (pure: incidents in, JSON out).
//!
//! Objects: one `identity` (the provider), and per incident an `incident` (name, description,
//! our kind and status as `x_computegate_*` properties), one `indicator` per indicator (STIX
//! pattern, `pattern_type` `stix`, `valid_from` the incident's creation), a `relationship`
//! `indicates` from each indicator to its incident, the evidence — an `observed-data` (observed
//! at the incident's creation) whose `object_refs` name one cyber-observable per value the
//! sharing kind may carry ([`super::observables`]), a `relationship` `based-on` from each such
//! indicator to it and one `related-to` from it to the incident — and a `report` (published at
//! the incident's last change) whose `object_refs` name all of them, so a reader walks from the
//! report to the evidence.
//!
//! Ids are UUID v5 under [`STIX_NAMESPACE`] from our own ids (`incident:<id>`,
//! `indicator:<id>`, …), so exporting again gives the same ids, a changed incident keeps its id
//! with a newer `modified`, and import can recognise our own identity.
//!
//! What each [`Sharing`] includes is the table in docs/incidents.md: a partner export carries
//! client addresses, email domains, payment fingerprints and API key ids only as their plain
//! SHA-256 ([`super::pattern`]), no observable of them, and names none of our customers,
//! organizations or runs; an authority export carries the values (patterns and observables)
//! and those ids.

use std::collections::HashSet;

use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::indicators::Indicator;
use super::model::Incident;
use super::{observables, pattern};
use crate::crypto::MasterKey;

/// The media type of a STIX 2.1 bundle.
pub const MEDIA_TYPE: &str = "application/stix+json;version=2.1";

/// The namespace of our deterministic STIX ids (UUID v5). Never changed: ids already shared
/// with partners are derived from it.
pub const STIX_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_0b8c_3a52_4f6e_9d17_52b4_c0e8_a913);

/// HKDF label of the value the provider identity's id is derived from.
const PROVIDER_LABEL: &[u8] = b"computegate/incidents/provider/v1";

/// Who a bundle is for, which decides how much personal data it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// Another provider: personal indicators as their plain SHA-256, no ids of ours.
    Partner,
    /// An authority: every value in clear, with the customers, organizations and runs named.
    Authority,
}

crate::names::stored_enum!(Sharing {
    Partner => "partner",
    Authority => "authority",
});

/// The provider as its bundles name it: a STIX `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The identity's UUID (derived from the master key: one per deployment).
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

// === impl Provider ===

impl Provider {
    /// The identity name of a bundle when none is configured.
    pub const DEFAULT_NAME: &'static str = "Computegate provider";

    /// The provider of the deployment whose master key is `master`, named `name`.
    pub fn of(master: &MasterKey, name: &str) -> Provider {
        let seed = master.derive_subkey(PROVIDER_LABEL);
        Provider {
            id: stix_uuid(&format!("identity:{}", hex::encode(&seed[..16]))),
            name: name.to_owned(),
        }
    }

    /// The identity's STIX id.
    pub fn stix_id(&self) -> String {
        format!("identity--{}", self.id)
    }
}

/// The bundle of `incidents` for `sharing`, from `provider`.
pub fn bundle(provider: &Provider, incidents: &[Incident], sharing: Sharing) -> Value {
    let created = incidents
        .iter()
        .map(|i| i.created_at)
        .min()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut objects = vec![json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": provider.stix_id(),
        "created": stix_time(created),
        "modified": stix_time(created),
        "name": provider.name,
        "identity_class": "organization",
    })];
    let mut seed = format!("bundle:{}", sharing.as_str());
    // An observable shared by several incidents is written once (same value, same id).
    let mut written = HashSet::new();
    for incident in incidents {
        objects.extend(incident_objects(provider, incident, sharing, &mut written));
        seed.push_str(&format!(
            ":{}@{}",
            incident.id,
            incident.updated_at.unix_timestamp_nanos()
        ));
    }
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", stix_uuid(&seed)),
        "objects": objects,
    })
}

/// The incident, its indicators, its evidence, their relationships and the report of one
/// incident. `written` holds the ids of the observables already in the bundle.
fn incident_objects(
    provider: &Provider,
    incident: &Incident,
    sharing: Sharing,
    written: &mut HashSet<String>,
) -> Vec<Value> {
    let created = stix_time(incident.created_at);
    let modified = stix_time(incident.updated_at);
    let incident_id = format!(
        "incident--{}",
        stix_uuid(&format!("incident:{}", incident.id))
    );
    let mut sdo = json!({
        "type": "incident",
        "spec_version": "2.1",
        "id": incident_id,
        "created": created,
        "modified": modified,
        "created_by_ref": provider.stix_id(),
        "name": format!("{} incident", incident.kind),
        "description": incident.description,
        "x_computegate_kind": incident.kind,
        "x_computegate_status": incident.status.as_str(),
    });
    if sharing == Sharing::Authority {
        sdo["x_computegate_incident_id"] = json!(incident.id);
        // STIX allows no empty lists: a list without ids is left out.
        for (name, ids) in [
            ("x_computegate_customers", &incident.customers),
            ("x_computegate_organizations", &incident.organizations),
            ("x_computegate_runs", &incident.runs),
        ] {
            if !ids.is_empty() {
                sdo[name] = json!(ids);
            }
        }
    }
    let mut refs = vec![json!(provider.stix_id()), json!(incident_id)];
    let mut objects = vec![sdo];
    let observed_id = format!(
        "observed-data--{}",
        stix_uuid(&format!("observed-data:{}", incident.id))
    );
    // The observables of the values this sharing kind carries in clear, each once.
    let mut observed_refs: Vec<String> = Vec::new();
    for item in &incident.indicators {
        let ind = &item.indicator;
        if hashed(ind, sharing) {
            continue;
        }
        let sco = observables::write(ind);
        let sco_id = sco["id"].as_str().unwrap_or_default().to_owned();
        if observed_refs.contains(&sco_id) {
            continue;
        }
        if written.insert(sco_id.clone()) {
            objects.push(sco);
        }
        refs.push(json!(sco_id));
        observed_refs.push(sco_id);
    }
    for item in &incident.indicators {
        let ind = &item.indicator;
        let hashed = hashed(ind, sharing);
        let indicator_id = format!(
            "indicator--{}",
            stix_uuid(&format!("indicator:{}", item.id))
        );
        let name = if hashed {
            format!("{} (SHA-256 of the value)", ind.kind().as_str())
        } else {
            ind.kind().as_str().to_owned()
        };
        objects.push(json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": indicator_id,
            "created": created,
            "modified": created,
            "created_by_ref": provider.stix_id(),
            "name": name,
            "indicator_types": ["malicious-activity"],
            "pattern": pattern::write(ind, hashed),
            "pattern_type": "stix",
            "valid_from": created,
            "x_computegate_indicator_type": ind.kind().as_str(),
        }));
        let indicates = relationship(
            provider,
            &created,
            &format!("indicates:{}", item.id),
            "indicates",
            &indicator_id,
            &incident_id,
        );
        refs.push(json!(indicator_id));
        refs.push(indicates["id"].clone());
        objects.push(indicates);
        if !hashed {
            let based_on = relationship(
                provider,
                &created,
                &format!("based-on:{}", item.id),
                "based-on",
                &indicator_id,
                &observed_id,
            );
            refs.push(based_on["id"].clone());
            objects.push(based_on);
        }
    }
    // STIX requires at least one object_ref: no observable, no observed-data.
    if !observed_refs.is_empty() {
        objects.push(json!({
            "type": "observed-data",
            "spec_version": "2.1",
            "id": observed_id,
            "created": created,
            "modified": created,
            "created_by_ref": provider.stix_id(),
            "first_observed": created,
            "last_observed": created,
            "number_observed": 1,
            "object_refs": observed_refs,
        }));
        let related = relationship(
            provider,
            &created,
            &format!("observed-in:{}", incident.id),
            "related-to",
            &observed_id,
            &incident_id,
        );
        refs.push(json!(observed_id));
        refs.push(related["id"].clone());
        objects.push(related);
    }
    objects.push(json!({
        "type": "report",
        "spec_version": "2.1",
        "id": format!("report--{}", stix_uuid(&format!("report:{}", incident.id))),
        "created": created,
        "modified": modified,
        "created_by_ref": provider.stix_id(),
        "name": format!("{} incident report", incident.kind),
        "description": incident.description,
        "report_types": ["threat-report"],
        "published": modified,
        "object_refs": refs,
    }));
    objects
}

/// Whether `sharing` carries `indicator` only as its plain SHA-256 (no observable then).
fn hashed(indicator: &Indicator, sharing: Sharing) -> bool {
    sharing == Sharing::Partner && indicator.hashed_for_partners()
}

/// A `relationship` of `kind` from `source` to `target`, its id derived from `seed`.
fn relationship(
    provider: &Provider,
    created: &str,
    seed: &str,
    kind: &str,
    source: &str,
    target: &str,
) -> Value {
    json!({
        "type": "relationship",
        "spec_version": "2.1",
        "id": format!("relationship--{}", stix_uuid(seed)),
        "created": created,
        "modified": created,
        "created_by_ref": provider.stix_id(),
        "relationship_type": kind,
        "source_ref": source,
        "target_ref": target,
    })
}

/// UUID v5 of `name` under [`STIX_NAMESPACE`].
pub fn stix_uuid(name: &str) -> Uuid {
    uuid_v5(STIX_NAMESPACE, name)
}

/// UUID v5 (RFC 9562 §5.5: the first 16 bytes of SHA-1 of namespace ‖ name, version and
/// variant bits set).
pub(super) fn uuid_v5(namespace: Uuid, name: &str) -> Uuid {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(namespace.as_bytes());
    sha.update(name.as_bytes());
    let digest = sha.digest().bytes();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// A STIX timestamp: UTC, millisecond precision, `Z` (`2026-12-07T10:00:00.000Z`).
pub fn stix_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::indicators::{Indicator, IndicatorKind};
    use crate::incidents::{IncidentIndicator, IncidentStatus};
    use time::macros::datetime;

    fn incident() -> Incident {
        let ind = |n: u128, kind, v: &str| IncidentIndicator {
            id: Uuid::from_u128(n),
            indicator: Indicator::parse(kind, v).unwrap(),
        };
        Incident {
            id: Uuid::from_u128(1),
            kind: "account_sharing".into(),
            description: "keys resold".into(),
            status: IncidentStatus::Reported,
            customers: vec![Uuid::from_u128(7)],
            organizations: vec![],
            runs: vec![],
            indicators: vec![
                ind(2, IndicatorKind::Ipv4, "203.0.113.7"),
                ind(3, IndicatorKind::DocumentSha256, &"ab".repeat(32)),
            ],
            created_by: "staff:x".into(),
            created_at: datetime!(2026-12-07 10:00:00.123456 UTC),
            updated_at: datetime!(2026-12-07 11:00 UTC),
        }
    }

    fn provider() -> Provider {
        Provider::of(
            &MasterKey::from_base64(&"A".repeat(43)).unwrap(),
            "Acme Cloud",
        )
    }

    fn objects_of<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
        (bundle["objects"].as_array().unwrap().iter())
            .filter(|o| o["type"] == kind)
            .collect()
    }

    #[test]
    fn uuid_v5_matches_the_rfc_example() {
        // RFC 9562 appendix A.4: v5 of "www.example.com" in the DNS namespace.
        assert_eq!(
            uuid_v5(Uuid::NAMESPACE_DNS, "www.example.com").to_string(),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
        assert_eq!(stix_uuid("x").get_version_num(), 5);
        assert_eq!(stix_uuid("x"), stix_uuid("x"));
        assert_ne!(stix_uuid("x"), stix_uuid("y"));
    }

    #[test]
    fn timestamps_are_utc_milliseconds() {
        assert_eq!(
            stix_time(datetime!(2026-12-07 10:00:00.123456 +01:00)),
            "2026-12-07T09:00:00.123Z"
        );
    }

    #[test]
    fn a_partner_bundle_hashes_personal_values_and_names_no_customer() {
        let b = bundle(&provider(), &[incident()], Sharing::Partner);
        let text = b.to_string();
        assert!(!text.contains("203.0.113.7"), "{text}");
        assert!(!text.contains(&Uuid::from_u128(7).to_string()), "{text}");
        assert!(text.contains(&"ab".repeat(32)), "a document digest stays");
        let indicators = objects_of(&b, "indicator");
        assert_eq!(indicators.len(), 2);
        let ip = Indicator::parse(IndicatorKind::Ipv4, "203.0.113.7").unwrap();
        assert_eq!(indicators[0]["pattern"], pattern::write(&ip, true));
        assert_eq!(indicators[0]["valid_from"], "2026-12-07T10:00:00.123Z");
        // 2 `indicates`, the document indicator's `based-on`, the evidence's `related-to`.
        assert_eq!(objects_of(&b, "relationship").len(), 4);
        assert_eq!(objects_of(&b, "identity")[0]["name"], "Acme Cloud");
        let report = objects_of(&b, "report")[0];
        // identity, incident, 2 indicators, 2 `indicates`, the document's `file`, its
        // `based-on`, the observed-data and its `related-to`.
        assert_eq!(report["object_refs"].as_array().unwrap().len(), 10);
        assert_eq!(report["published"], "2026-12-07T11:00:00.000Z");
        let observed = objects_of(&b, "observed-data");
        assert_eq!(observed.len(), 1);
        let files = objects_of(&b, "file");
        assert_eq!(observed[0]["object_refs"], json!([files[0]["id"]]));
        assert!(
            objects_of(&b, "ipv4-addr").is_empty(),
            "no personal observable"
        );
    }

    #[test]
    fn the_evidence_is_walkable_from_the_report() {
        let b = bundle(&provider(), &[incident(), incident()], Sharing::Authority);
        let observed = objects_of(&b, "observed-data")[0];
        assert_eq!(observed["first_observed"], "2026-12-07T10:00:00.123Z");
        assert_eq!(observed["number_observed"], 1);
        let refs: Vec<&Value> = observed["object_refs"].as_array().unwrap().iter().collect();
        let ip = objects_of(&b, "ipv4-addr");
        assert_eq!(ip.len(), 1, "one observable per value in a bundle");
        assert_eq!(ip[0]["value"], "203.0.113.7");
        assert_eq!(refs, [&ip[0]["id"], &objects_of(&b, "file")[0]["id"]]);
        let rels = objects_of(&b, "relationship");
        let of = |kind: &str| -> Vec<(&Value, &Value)> {
            (rels.iter())
                .filter(|r| r["relationship_type"] == kind)
                .map(|r| (&r["source_ref"], &r["target_ref"]))
                .collect()
        };
        let incident_id = &objects_of(&b, "incident")[0]["id"];
        assert_eq!(of("related-to")[0], (&observed["id"], incident_id));
        let indicators = objects_of(&b, "indicator");
        assert_eq!(
            of("based-on")[..2],
            [
                (&indicators[0]["id"], &observed["id"]),
                (&indicators[1]["id"], &observed["id"])
            ]
        );
        let report = &objects_of(&b, "report")[0]["object_refs"];
        for id in [&observed["id"], &ip[0]["id"], &rels[1]["id"]] {
            assert!(
                report.as_array().unwrap().contains(id),
                "{id} not in the report"
            );
        }
    }

    #[test]
    fn an_authority_bundle_carries_values_and_ids() {
        let b = bundle(&provider(), &[incident()], Sharing::Authority);
        let incident_sdo = objects_of(&b, "incident")[0];
        assert_eq!(
            incident_sdo["x_computegate_customers"],
            json!([Uuid::from_u128(7)])
        );
        assert_eq!(incident_sdo["x_computegate_status"], "reported");
        assert!(
            incident_sdo.get("x_computegate_runs").is_none(),
            "no empty list"
        );
        assert_eq!(
            objects_of(&b, "indicator")[0]["pattern"],
            "[ipv4-addr:value = '203.0.113.7']"
        );
    }

    #[test]
    fn ids_are_stable_and_differ_per_deployment() {
        let a = bundle(&provider(), &[incident()], Sharing::Partner);
        assert_eq!(a, bundle(&provider(), &[incident()], Sharing::Partner));
        let other = Provider::of(&MasterKey::generate().unwrap(), "Acme Cloud");
        assert_ne!(provider().id, other.id);
        let mut changed = incident();
        changed.updated_at = datetime!(2026-12-08 0:00 UTC);
        let c = bundle(&provider(), &[changed], Sharing::Partner);
        assert_ne!(a["id"], c["id"], "a changed incident is a new bundle");
        assert_eq!(
            objects_of(&a, "incident")[0]["id"],
            objects_of(&c, "incident")[0]["id"],
            "the incident keeps its id"
        );
    }
}
