//! Which of our customers a partner's indicators match (pure: what we hold in, matches out).
//!
//! [`Holdings`] is what the store read of ours for the kinds a bundle asks about: each
//! canonical value with the customers it belongs to (client addresses from the access log,
//! email domains, document digests, API key ids), keyed by its [`IndicatorHash`], and the
//! keyed link-attribute hashes of payment fingerprints (the store keeps no fingerprint in
//! clear). A partner's raw value is keyed-hashed and looked up; a partner's shared SHA-256 is
//! looked up among the shared digests of our own values first. A raw fingerprint matches
//! through its link-attribute hash; a hashed one cannot match (documented).
//!
//! A match carries the keyed hash of the value, never the partner's text: that is all a flag
//! stores.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::indicators::{Indicator, IndicatorHash, IndicatorKey, IndicatorKind, shared_digest};
use super::pattern::PatternValue;
use super::stix_import::PartnerIndicator;
use crate::ledger::{AttributeHash, AttributeKey, LinkValue};

/// Our values of the kinds a bundle asks about, with their customers.
#[derive(Debug)]
pub struct Holdings {
    key: IndicatorKey,
    by_hash: HashMap<IndicatorHash, Vec<Uuid>>,
    by_shared: HashMap<(IndicatorKind, [u8; 32]), IndicatorHash>,
    fingerprints: HashMap<AttributeHash, Vec<Uuid>>,
}

/// A partner's indicator that matched one of our customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the indicator in the partner's list.
    pub partner_index: usize,
    /// Our customer.
    pub customer_id: Uuid,
    /// What kind of value matched.
    pub kind: IndicatorKind,
    /// The keyed hash of the matched value.
    pub hash: IndicatorHash,
}

/// The kinds `indicators` ask about (the store reads only those).
pub fn kinds_asked(indicators: &[PartnerIndicator]) -> BTreeSet<IndicatorKind> {
    indicators
        .iter()
        .map(|i| match &i.value {
            PatternValue::Raw(v) => v.kind(),
            PatternValue::Sha256 { kind, .. } => *kind,
        })
        .collect()
}

// === impl Holdings ===

impl Holdings {
    /// Empty holdings hashing with `key`.
    pub fn new(key: IndicatorKey) -> Holdings {
        Holdings {
            key,
            by_hash: HashMap::new(),
            by_shared: HashMap::new(),
            fingerprints: HashMap::new(),
        }
    }

    /// `customer_id` holds `value`.
    pub fn add(&mut self, value: &Indicator, customer_id: Uuid) {
        let hash = self.key.hash(value);
        let customers = self.by_hash.entry(hash).or_default();
        if !customers.contains(&customer_id) {
            customers.push(customer_id);
        }
        self.by_shared
            .insert((value.kind(), shared_digest(value.value())), hash);
    }

    /// `customer_id` holds a payment fingerprint whose link-attribute hash is `hash`.
    pub fn add_fingerprint(&mut self, hash: AttributeHash, customer_id: Uuid) {
        let customers = self.fingerprints.entry(hash).or_default();
        if !customers.contains(&customer_id) {
            customers.push(customer_id);
        }
    }

    /// Every (indicator, customer) pair that matches, in the partner's order.
    pub fn matches(
        &self,
        indicators: &[PartnerIndicator],
        attributes: &AttributeKey,
    ) -> Vec<Match> {
        let mut out = Vec::new();
        for (partner_index, indicator) in indicators.iter().enumerate() {
            let (kind, hash, customers) = match &indicator.value {
                PatternValue::Raw(v) if v.kind() == IndicatorKind::PaymentFingerprint => {
                    let customers = LinkValue::payment_fingerprint(v.value())
                        .and_then(|lv| self.fingerprints.get(&attributes.hash(&lv)));
                    (v.kind(), self.key.hash(v), customers)
                }
                PatternValue::Raw(v) => {
                    let hash = self.key.hash(v);
                    (v.kind(), hash, self.by_hash.get(&hash))
                }
                PatternValue::Sha256 { kind, digest } => {
                    let Some(hash) = self.by_shared.get(&(*kind, *digest)) else {
                        continue;
                    };
                    (*kind, *hash, self.by_hash.get(hash))
                }
            };
            for &customer_id in customers.into_iter().flatten() {
                out.push(Match {
                    partner_index,
                    customer_id,
                    kind,
                    hash,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn ind(kind: IndicatorKind, v: &str) -> Indicator {
        Indicator::parse(kind, v).unwrap()
    }

    fn partner(value: PatternValue) -> PartnerIndicator {
        PartnerIndicator {
            stix_id: "indicator--x".into(),
            partner: "P".into(),
            value,
            context: String::new(),
        }
    }

    fn shared(i: &Indicator) -> PatternValue {
        PatternValue::Sha256 {
            kind: i.kind(),
            digest: shared_digest(i.value()),
        }
    }

    #[test]
    fn raw_and_hashed_values_match_their_holders() {
        let master = MasterKey::generate().unwrap();
        let key = IndicatorKey::derive(&master);
        let (alice, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let ip = ind(IndicatorKind::Ipv4, "198.51.100.9");
        let domain = ind(IndicatorKind::EmailDomain, "bad.example");
        let mut ours = Holdings::new(key.clone());
        ours.add(&ip, alice);
        ours.add(&ip, alice);
        ours.add(&ip, bob);
        ours.add(&domain, bob);
        let theirs = [
            partner(PatternValue::Raw(ip.clone())),
            partner(shared(&domain)),
            partner(PatternValue::Raw(ind(IndicatorKind::Ipv4, "198.51.100.10"))),
            // The same digest under another kind is another value.
            partner(PatternValue::Sha256 {
                kind: IndicatorKind::ApiKeyId,
                digest: shared_digest(domain.value()),
            }),
        ];
        let m = ours.matches(&theirs, &AttributeKey::derive(&master));
        let got: Vec<(usize, Uuid)> = m.iter().map(|m| (m.partner_index, m.customer_id)).collect();
        assert_eq!(got, [(0, alice), (0, bob), (1, bob)]);
        assert_eq!(m[2].hash, key.hash(&domain));
        assert_eq!(m[2].kind, IndicatorKind::EmailDomain);
    }

    #[test]
    fn a_raw_fingerprint_matches_through_the_link_attribute_hash() {
        let master = MasterKey::generate().unwrap();
        let attributes = AttributeKey::derive(&master);
        let carol = Uuid::from_u128(3);
        let mut ours = Holdings::new(IndicatorKey::derive(&master));
        let held = LinkValue::payment_fingerprint("pm_fp_Xt5EWLL9").unwrap();
        ours.add_fingerprint(attributes.hash(&held), carol);
        let fp = ind(IndicatorKind::PaymentFingerprint, "pm_fp_Xt5EWLL9");
        let theirs = [
            partner(PatternValue::Raw(fp.clone())),
            partner(shared(&fp)),
            partner(PatternValue::Raw(ind(
                IndicatorKind::PaymentFingerprint,
                "pm_fp_xt5ewll9",
            ))),
        ];
        let m = ours.matches(&theirs, &attributes);
        assert_eq!(m.len(), 1, "raw only, and case matters: {m:?}");
        assert_eq!((m[0].partner_index, m[0].customer_id), (0, carol));
    }

    #[test]
    fn kinds_asked_are_collected_once() {
        let ip = ind(IndicatorKind::Ipv4, "198.51.100.9");
        let kinds = kinds_asked(&[
            partner(PatternValue::Raw(ip.clone())),
            partner(shared(&ip)),
            partner(shared(&ind(IndicatorKind::Ipv6, "::1"))),
        ]);
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [IndicatorKind::Ipv4, IndicatorKind::Ipv6]
        );
    }
}
