//! Policy loads in the chain: recorded once per change of version or text, on both backends.

use computegate_kyc::audit::{PolicyLoad, PolicyTrigger};

use crate::support::{Ctx, t0};

fn load(version: &str, digest: &str, trigger: PolicyTrigger) -> PolicyLoad {
    PolicyLoad {
        version: version.into(),
        effective_from: "2026-01-01".into(),
        digest: digest.into(),
        trigger,
    }
}

async fn a_policy_is_recorded_once_until_it_changes(ctx: Ctx) {
    let audit = ctx.store.audit();
    let at = t0();
    let a = load("2026.1", &"a".repeat(64), PolicyTrigger::Startup);
    assert!(
        audit.record_policy_load(&a, at).await.unwrap(),
        "first load"
    );
    let restart = load("2026.1", &"a".repeat(64), PolicyTrigger::Sighup);
    assert!(
        !audit.record_policy_load(&restart, at).await.unwrap(),
        "same policy"
    );
    let edited = load("2026.1", &"b".repeat(64), PolicyTrigger::FileChanged);
    assert!(
        audit.record_policy_load(&edited, at).await.unwrap(),
        "edited text"
    );
    assert!(
        audit.record_policy_load(&a, at).await.unwrap(),
        "back to the first"
    );
    let v = audit.verify_audit_chain().await.unwrap();
    assert_eq!(v.records, 3);
    assert!(v.first_broken.is_none(), "{v:?}");
}

crate::store_suite!(a_policy_is_recorded_once_until_it_changes);
