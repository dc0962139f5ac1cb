//! Where a customer is verified to be, for the data plane's jurisdiction rules: every country
//! named by its latest approved application and, for a member of an organization, by the
//! organization's latest approved KYB application (nationality, residence, document issuer;
//! jurisdiction, headquarters, ultimate parent, representative and beneficial owners — the same
//! set verification screens against the jurisdiction rules, see
//! [`ApplicationPayload::countries`]).
//!
//! "Latest approved" is the newest application that was ever approved (`granted_tier` set), even
//! if its approval has since lapsed or been suspended: the last verified location stays known
//! until a newer approval replaces it. Applications never approved (drafts, pending, rejected)
//! are self-declared and not used. The countries come from the sealed payload (the clear
//! `country` column holds only the primary one), so reading them needs the master key. Once
//! retention has withdrawn that payload (an approval that ended long ago, superseded or of a
//! closed customer; docs/retention.md), the clear primary country stands in for it.

use time::OffsetDateTime;
use uuid::Uuid;

use super::VerificationError;
use super::applications::PAYLOAD;
use super::payload::ApplicationPayload;
use super::records::open_json;
use crate::crypto::MasterKey;
use crate::store::{VerificationStore, on_pool};

/// The customer's own latest approved application.
const OWN_LATEST: &str = "SELECT a.id, a.payload_sealed, a.identity_purged_at, a.country \
     FROM verification_applications a \
     WHERE a.customer_id = $1 AND a.granted_tier IS NOT NULL AND a.decided_at IS NOT NULL \
     ORDER BY a.decided_at DESC, a.created_at DESC LIMIT 1";

/// The latest approved organization application of any member of the customer's organization.
const ORGANIZATION_LATEST: &str = "SELECT a.id, a.payload_sealed, a.identity_purged_at, a.country \
     FROM customers me \
     JOIN customers member ON member.organization_id = me.organization_id \
     JOIN verification_applications a ON a.customer_id = member.id \
     WHERE me.id = $1 AND a.kind = 'organization' AND a.granted_tier IS NOT NULL \
       AND a.decided_at IS NOT NULL \
     ORDER BY a.decided_at DESC, a.created_at DESC LIMIT 1";

/// A row of [`OWN_LATEST`] or [`ORGANIZATION_LATEST`]: id, sealed payload, retention marker,
/// primary country.
type LatestRow = (Uuid, Vec<u8>, Option<OffsetDateTime>, Option<String>);

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// ISO 3166-1 alpha-2 codes the customer is verified in (see the module docs),
    /// deduplicated; empty when nothing was ever approved. Not audited: it is the data plane's
    /// own read of the customer's standing, and its result stays in memory.
    pub async fn verified_jurisdictions(
        &self,
        key: &MasterKey,
        customer_id: Uuid,
    ) -> Result<Vec<String>, VerificationError> {
        let mut rows: Vec<LatestRow> = Vec::with_capacity(2);
        for sql in [OWN_LATEST, ORGANIZATION_LATEST] {
            let row: Option<LatestRow> = on_pool!(self.store, |pool| sqlx::query_as(sql)
                .bind(customer_id)
                .fetch_optional(pool)
                .await?);
            if let Some(row) = row
                && !rows.iter().any(|r| r.0 == row.0)
            {
                rows.push(row);
            }
        }
        let mut out: Vec<String> = Vec::new();
        for (id, sealed, purged_at, country) in rows {
            // Retention withdrew the payload of an approval that ended long ago: the clear
            // primary country is all that is left of where it was verified.
            let countries = match purged_at {
                Some(_) => country.into_iter().collect(),
                None => open_json::<ApplicationPayload>(key, id, PAYLOAD, &sealed)?.countries(),
            };
            for country in countries {
                if !out.contains(&country) {
                    out.push(country);
                }
            }
        }
        Ok(out)
    }
}
