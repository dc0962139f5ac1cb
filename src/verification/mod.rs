//! Verification (KYC/KYB) in the running gateway: the [`Verification`] service that the customer,
//! webhook and staff APIs share, the screening of submitted applications against the latest
//! denied-party list, the re-screening of screened customers after a list import, and the
//! background tasks (screening sweep, re-verification expiry, re-screen pick-up, metrics).
//!
//! The decisions live in `computegate_kyc::verification` and `computegate_kyc::screening`;
//! this module only wires them to the process: the master key, the policy in force (jurisdiction
//! groups and re-verification periods), the IDV webhook secrets and the Onfido API client from
//! the environment (with the worker that fetches what Onfido's webhooks announce), the
//! metrics registry and the data plane's credential caches. Every change to a customer's status
//! or tier made here is announced (`Notice::CustomerChanged`) so the data plane sees it at once.

mod applications;
mod fetcher;
mod idv_fetch;
mod incidents;
mod metrics;
mod onfido_api;
mod organizations;
pub mod outstanding;
mod rescreen;
mod resellers;
mod review;
mod screening;
mod tasks;
mod webhook_secrets;

use std::sync::Arc;

use computegate_gateway::policy::{Policy, PolicyHandle};
use computegate_kyc::Store;
use computegate_kyc::audit::{AuditAction, AuditFilter};
use computegate_kyc::cluster::Notice;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::verification::{
    ApplicationStatus, DocumentLimits, JurisdictionRules, ScreeningRecorded,
};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::Identity;

pub use self::fetcher::IdvFetcher;
pub use self::incidents::IncidentActionError;
pub use self::metrics::KycMetrics;
pub use self::onfido_api::{OnfidoApi, OnfidoApiConfig, OnfidoConfigError};
pub use self::organizations::OrganizationError;
pub use self::rescreen::{
    RESCREEN_ACTION, RescreenReport, rescreen_customers, rescreen_customers_reporting,
};
pub use self::screening::{
    LoadedList, ScreeningCache, ScreeningRunError, adhoc_subject, screen_subjects, subjects_of,
};
pub use self::webhook_secrets::{IdvSecrets, idv_secrets_from_env};

/// The verification service of one gateway process.
pub struct Verification {
    identity: Arc<Identity>,
    master: MasterKey,
    policy: Arc<PolicyHandle>,
    secrets: IdvSecrets,
    fetcher: IdvFetcher,
    limits: DocumentLimits,
    lists: ScreeningCache,
    metrics: KycMetrics,
    stats_changed: tokio::sync::Notify,
}

/// What a customer-level staff action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerAction {
    /// Suspends an active customer.
    Suspend,
    /// Makes a suspended customer active again.
    Resume,
    /// Closes the account for good.
    Close,
}

// === impl CustomerAction ===

impl CustomerAction {
    /// The name the audit chain records an attempt under.
    pub fn name(self) -> &'static str {
        match self {
            CustomerAction::Suspend => "suspend",
            CustomerAction::Resume => "resume",
            CustomerAction::Close => "close",
        }
    }

    /// The customer's status after the action.
    pub fn status(self) -> &'static str {
        match self {
            CustomerAction::Suspend => "suspended",
            CustomerAction::Resume => "active",
            CustomerAction::Close => "closed",
        }
    }
}

// === impl Verification ===

impl Verification {
    /// Builds the service and registers its metrics. Start its background work with
    /// [`Verification::spawn_tasks`].
    pub fn new(
        identity: Arc<Identity>,
        master: MasterKey,
        policy: Arc<PolicyHandle>,
        secrets: IdvSecrets,
        onfido: Option<OnfidoApiConfig>,
        registry: &mut Registry,
    ) -> Arc<Verification> {
        tracing::info!(providers = ?secrets.configured(), onfido_api = onfido.as_ref().map(|c| c.base_url.as_str()), "IDV webhook providers configured");
        let fetcher = IdvFetcher::new(onfido.map(OnfidoApi::new), registry);
        Arc::new(Verification {
            identity,
            master,
            policy,
            secrets,
            fetcher,
            limits: DocumentLimits::default(),
            lists: ScreeningCache::default(),
            metrics: KycMetrics::register(registry),
            stats_changed: tokio::sync::Notify::new(),
        })
    }

    /// The identity service (store, credential caches, notices).
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The system of record.
    pub fn store(&self) -> &Store {
        &self.identity.store
    }

    /// The key personal data is sealed with.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// IDV webhook secrets per provider.
    pub fn secrets(&self) -> &IdvSecrets {
        &self.secrets
    }

    /// The worker that fetches what Onfido's webhooks announce.
    pub fn fetcher(&self) -> &IdvFetcher {
        &self.fetcher
    }

    /// Upload limits.
    pub fn limits(&self) -> &DocumentLimits {
        &self.limits
    }

    /// The metrics.
    pub fn metrics(&self) -> &KycMetrics {
        &self.metrics
    }

    /// The jurisdiction rules of the policy in force.
    pub fn jurisdiction(&self) -> JurisdictionRules {
        jurisdiction_rules(&self.policy.current())
    }

    /// The latest imported denied-party list (`None`: none was ever imported).
    pub async fn current_list(
        &self,
    ) -> Result<Option<Arc<LoadedList>>, computegate_kyc::screening::ScreeningError> {
        self.lists.current(self.store()).await
    }

    /// The policy in force (the console shows it with each rule's source).
    pub fn policy_in_force(&self) -> Arc<computegate_policy::Policy> {
        self.policy.current()
    }

    /// The names of the policy's tiers, lowest first.
    pub fn tier_names(&self) -> Vec<String> {
        let policy = self.policy.current();
        policy.tiers().iter().map(|t| t.name.clone()).collect()
    }

    /// Whether the policy in force defines tier `name`.
    pub fn tier_defined(&self, name: &str) -> bool {
        self.policy.current().tier(name).is_some()
    }

    /// The policy's re-verification period for tier `name` (`None`: never).
    pub fn reverify_after(&self, name: &str) -> Option<time::Duration> {
        self.policy
            .current()
            .tier(name)
            .and_then(|t| t.reverify_every)
            .map(crate::identity::span)
    }

    /// The evidence the policy's tier `name` requires an approval to have on file.
    pub fn required_evidence(&self, name: &str) -> Vec<computegate_policy::Evidence> {
        (self.policy.current().tier(name)).map_or_else(Vec::new, |t| t.requires.clone())
    }

    /// Tells the data plane (here and on other replicas) that a customer's status or tier
    /// changed, and refreshes the application gauges soon. The other members of its
    /// organization are told too: their principals carry the organization's verified
    /// jurisdictions, which a KYB decision changes.
    pub async fn customer_changed(&self, customer_id: Uuid) {
        for notice in change_notices(self.store(), customer_id).await {
            self.identity.announce(notice).await;
        }
        self.stats_changed();
    }

    /// Asks the metrics task to refresh the application gauges now.
    pub fn stats_changed(&self) {
        self.stats_changed.notify_one();
    }

    /// Screens a `submitted` application against the latest list version and records the
    /// outcome (`pending_review`, or `rejected` for an embargoed jurisdiction). `Ok(None)` when
    /// no list has been imported yet: the application stays `submitted` and the sweep retries.
    pub async fn screen_submitted(
        &self,
        id: Uuid,
    ) -> Result<Option<ScreeningRecorded>, ScreeningRunError> {
        let Some(list) = self.lists.current(self.store()).await? else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let subjects = self
            .store()
            .verification()
            .begin_application_screening(&self.master, id, now)
            .await?;
        self.finish_screening(&list, id, &subjects, now)
            .await
            .map(Some)
    }

    /// Screens `subjects` of application `id` (already in `screening`) and records the result.
    async fn finish_screening(
        &self,
        list: &LoadedList,
        id: Uuid,
        subjects: &[computegate_kyc::verification::ScreeningSubject],
        now: OffsetDateTime,
    ) -> Result<ScreeningRecorded, ScreeningRunError> {
        let (summary, results) = screen_subjects(list, subjects);
        for (role, result) in &results {
            let subject_ref = screening::subject_ref(id, role);
            if let Err(e) = self
                .store()
                .screening()
                .record_screening(&subject_ref, result, now)
                .await
            {
                tracing::warn!(error = %e, application = %id, "could not record a party screening");
            }
        }
        let hits = results
            .iter()
            .filter(|(_, r)| r.decision == computegate_kyc::screening::Decision::Hit)
            .count();
        self.metrics
            .screening_hits(list.version.format, hits as u64);
        let recorded = self
            .store()
            .verification()
            .record_application_screening(
                &self.master,
                id,
                &summary,
                None,
                &self.jurisdiction(),
                now,
            )
            .await?;
        self.metrics.funnel("screened");
        if recorded.status == ApplicationStatus::Rejected {
            self.metrics.funnel("rejected");
            // Rejected for an embargoed jurisdiction, which suspends the customer.
            match self.owner_of(id).await {
                Some(customer_id) => self.customer_changed(customer_id).await,
                None => self.identity.announce(Notice::Resync).await,
            }
        }
        self.stats_changed();
        Ok(recorded)
    }

    /// The customer who owns application `id`, read from its `kyc.application.created` audit
    /// record (the store offers no unaudited staff read of an application's owner).
    pub async fn owner_of(&self, id: Uuid) -> Option<Uuid> {
        let filter = AuditFilter {
            subject: Some(format!("application:{id}")),
            action: Some(AuditAction::ApplicationCreated.as_str().into()),
            limit: 1,
            ..AuditFilter::default()
        };
        match self.store().audit().audit_page(&filter).await {
            Ok(records) => records
                .first()
                .and_then(|r| r.detail["customer_id"].as_str())
                .and_then(|s| Uuid::parse_str(s).ok()),
            Err(e) => {
                tracing::warn!(error = %e, application = %id, "cannot read the application's owner");
                None
            }
        }
    }
}

/// Jurisdiction rules from policy: the countries of the `jurisdiction.deny_groups` are
/// embargoed, those of `jurisdiction.review_groups` high-risk.
pub fn jurisdiction_rules(policy: &Policy) -> JurisdictionRules {
    let countries = |groups: &[String]| -> Vec<String> {
        let mut out: Vec<String> = groups
            .iter()
            .filter_map(|g| policy.country_group(g))
            .flat_map(|g| g.countries.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let rules = policy.jurisdiction();
    JurisdictionRules {
        embargoed: countries(&rules.deny_groups),
        high_risk: countries(&rules.review_groups),
    }
}

/// A lower time bound as the audit filters take it: an RFC 3339 time, or a `YYYY-MM-DD` date
/// meaning midnight UTC.
pub fn parse_since(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Some(t);
    }
    computegate_kyc::verification::payload::parse_date(text).map(|d| d.midnight().assume_utc())
}

/// The notices a change of `customer_id` needs: its own, and one per other member of its
/// organization — or one resync of every cached principal when the organization is large
/// or its members cannot be read (never a member left stale).
async fn change_notices(store: &Store, customer_id: Uuid) -> Vec<Notice> {
    /// Above this many members one resync is cheaper than a notice each.
    const MAX_MEMBER_NOTICES: usize = 100;
    let mut notices = vec![Notice::CustomerChanged { customer_id }];
    let organization = match store.accounts().customer_by_id(customer_id).await {
        Ok(Some(c)) => c.organization_id,
        Ok(None) => None,
        Err(_) => return vec![Notice::Resync],
    };
    let Some(organization) = organization else {
        return notices;
    };
    match store.accounts().organization_members(organization).await {
        Ok(members) if members.len() <= MAX_MEMBER_NOTICES => notices.extend(
            members
                .into_iter()
                .filter(|m| m.id != customer_id)
                .map(|m| Notice::CustomerChanged { customer_id: m.id }),
        ),
        _ => return vec![Notice::Resync],
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_date() {
        assert_eq!(
            parse_since("2030-01-02").unwrap(),
            time::macros::datetime!(2030-01-02 0:00 UTC)
        );
        assert_eq!(
            parse_since("2030-01-02T03:04:05+01:00").unwrap(),
            time::macros::datetime!(2030-01-02 2:04:05 UTC)
        );
        assert!(parse_since("yesterday").is_none());
        assert!(parse_since("2030-02-30").is_none());
    }

    #[test]
    fn jurisdiction_groups_come_from_the_default_policy() {
        let policy = Policy::from_toml(crate::policy_file::DEFAULT_POLICY).unwrap();
        let rules = jurisdiction_rules(&policy);
        assert!(rules.embargoed.contains(&"IR".to_string()));
        assert!(rules.embargoed.contains(&"KP".to_string()));
        assert!(rules.high_risk.contains(&"RU".to_string()));
        assert!(!rules.high_risk.contains(&"DE".to_string()));
        assert!(!rules.embargoed.contains(&"DE".to_string()));
    }

    #[tokio::test]
    async fn a_change_reaches_every_member_of_the_organization() {
        use computegate_kyc::accounts::{Actor, CustomerKind};
        let path = std::env::temp_dir().join(format!("cg-notices-{}.db", Uuid::now_v7().simple()));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let hash =
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            let email = format!("{name}-{}@notices.example", Uuid::now_v7().simple());
            let c = store
                .accounts()
                .create_customer(&email, hash, CustomerKind::Individual, now)
                .await
                .unwrap();
            ids.push(c.id);
        }
        let actor = Actor::system("test");
        let org = store
            .accounts()
            .create_organization("Acme AI", &actor, now)
            .await
            .unwrap();
        for id in &ids[..2] {
            store
                .accounts()
                .add_organization_member(org.id, *id, &actor, now)
                .await
                .unwrap();
        }
        let changed = |id| Notice::CustomerChanged { customer_id: id };
        let mut member = change_notices(&store, ids[0]).await;
        member.sort_by_key(|n| format!("{n:?}"));
        let mut expected = vec![changed(ids[0]), changed(ids[1])];
        expected.sort_by_key(|n| format!("{n:?}"));
        assert_eq!(member, expected, "the other member is told too");
        assert_eq!(change_notices(&store, ids[2]).await, vec![changed(ids[2])]);
        let unknown = Uuid::now_v7();
        assert_eq!(
            change_notices(&store, unknown).await,
            vec![changed(unknown)],
            "an unknown customer: its own notice only"
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
