//! The identity snapshot a training-run report holds: who ran the job, as the gateway knew the
//! customer when the report fell due — customer and organization ids, the verification tier, and
//! the jurisdictions the customer is verified in.
//!
//! One shape for both places a report is written: at admission (from the principal, in memory,
//! so admission does no extra read) and for a threshold crossed by measured usage (from the
//! store, then attached to the report). Names, documents and addresses stay sealed in the
//! verification records; staff reach them from the customer id through the audited application
//! view, so a copy of the ledger tables does not carry them.

use computegate_gateway::auth::Principal;
use computegate_kyc::Store;
use computegate_kyc::accounts::Actor;
use computegate_kyc::crypto::MasterKey;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// The snapshot of an authenticated caller.
pub fn from_principal(p: &Principal) -> Value {
    snapshot(
        &p.customer_id,
        &p.tier,
        p.organization_id.as_deref(),
        &p.jurisdictions,
    )
}

/// The snapshot of a reseller's end customer, admitted through the reseller's credential
/// `p`: the end customer is the customer (its tier is the reseller's, whose caps applied), and
/// the reseller — its organization and the account that submitted — is named beside it. The
/// end customer's identity stays sealed in its registration (staff reach it by its id).
pub fn end_customer(p: &Principal, end_customer: Uuid, reseller: Uuid) -> Value {
    let mut s = snapshot(&end_customer.to_string(), &p.tier, None, &[]);
    s["reseller"] = json!({
        "organization_id": reseller,
        "customer_id": &*p.customer_id,
        "jurisdictions": &*p.jurisdictions,
    });
    s
}

/// Attaches the customer's snapshot, read from the store now, to reports written without one
/// (those of thresholds crossed by measured usage). Best effort: a report whose snapshot cannot
/// be attached keeps its customer id, and the failure is logged.
pub async fn attach(store: &Store, master: &MasterKey, customer_id: Uuid, report_ids: &[Uuid]) {
    if report_ids.is_empty() {
        return;
    }
    let snapshot = match from_store(store, master, customer_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(customer = %customer_id, error = %e,
                "cannot read the customer for a report's identity snapshot");
            return;
        }
    };
    let actor = Actor::system("metering");
    for id in report_ids {
        let attached = store
            .ledger()
            .attach_report_identity(*id, &snapshot, &actor, OffsetDateTime::now_utc())
            .await;
        if let Err(e) = attached {
            tracing::warn!(report = %id, error = %e, "cannot attach a report's identity snapshot");
        }
    }
}

/// The snapshot of `customer_id` as the store has it now; `None` for an unknown customer.
async fn from_store(
    store: &Store,
    master: &MasterKey,
    customer_id: Uuid,
) -> anyhow::Result<Option<Value>> {
    let Some(c) = store.accounts().customer_by_id(customer_id).await? else {
        return Ok(None);
    };
    let jurisdictions = store
        .verification()
        .verified_jurisdictions(master, customer_id)
        .await?;
    let organization = c.organization_id.map(|o| o.to_string());
    let mut s = snapshot(
        &c.id.to_string(),
        c.tier.as_str(),
        organization.as_deref(),
        &jurisdictions,
    );
    // An end customer's report names its reseller, as at admission (the submitting account is
    // not known after the fact).
    if let Some(reseller) = store
        .verification()
        .reseller_of_end_customer(customer_id)
        .await?
    {
        s["reseller"] = json!({ "organization_id": reseller });
    }
    Ok(Some(s))
}

fn snapshot(
    customer_id: &str,
    tier: &str,
    organization_id: Option<&str>,
    jurisdictions: &[String],
) -> Value {
    json!({
        "customer_id": customer_id,
        "tier": tier,
        "organization_id": organization_id,
        "jurisdictions": jurisdictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_has_one_shape() {
        let s = snapshot(
            "c-1",
            "identity_verified",
            None,
            &["SE".into(), "NO".into()],
        );
        assert_eq!(
            s,
            json!({
                "customer_id": "c-1",
                "tier": "identity_verified",
                "organization_id": null,
                "jurisdictions": ["SE", "NO"],
            })
        );
    }
}
