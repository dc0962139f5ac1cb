//! Resellers: only a KYB-verified organization is marked (once); its end customers are accounts
//! of their own whose screening decides whether they may run jobs (a hit suspends that account
//! alone); another reseller's end customer is unknown; pass-through refusals are counted over a
//! window and flag an active reseller once; staff suspend and resume. Every change is audited
//! and the chain stays intact. One identity is one end customer of a reseller, also when two
//! replicas race to register it. Time is passed in.

use computegate_kyc::accounts::{Actor, CustomerKind, CustomerStatus, StaffRole, Tier};
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::crypto::MasterKey;
use computegate_kyc::verification::{
    ApplicationPayload, EndCustomerScreening, EndCustomerScreeningResult, EndCustomerStanding,
    NewEndCustomer, RefusalCounts, Registration, ResellerAction, ResellerError, ResellerStatus,
    SameIdentity, ScreeningDecision,
};
use time::Duration;
use uuid::Uuid;

use crate::fixtures::*;
use crate::organizations::{approve_kyb, organization_of};
use crate::support::{Ctx, t0};

/// A KYB-verified organization marked as reseller; returns its id.
async fn reseller(s: &computegate_kyc::Store, email: &str) -> Uuid {
    let key = key();
    let owner = customer(s, email, CustomerKind::Organization).await;
    let reviewer = staff(s, &format!("rev-{email}"), StaffRole::Reviewer).await;
    approve_kyb(s, &key, &owner, &reviewer, t0()).await;
    let org = organization_of(s, owner.customer_id)
        .await
        .expect("organization");
    let marked = s
        .verification()
        .mark_reseller(org, &reviewer.actor(), t0())
        .await
        .unwrap();
    assert_eq!(marked.status, ResellerStatus::Active);
    org
}

fn screened(decision: ScreeningDecision) -> EndCustomerScreeningResult {
    EndCustomerScreeningResult {
        list_version: Some("0197a3b2-test-list".into()),
        decision,
        score: 0.5,
    }
}

/// Person `n`: another name and passport than the fixture's, the same card (so every one of
/// them links with the others by payment fingerprint).
fn someone(n: u32) -> ApplicationPayload {
    let mut p = individual();
    let person = p.individual.as_mut().expect("individual");
    person.legal_name = Some(format!("Person Number{n} Example"));
    let doc = person.id_document.as_mut().expect("document");
    doc.number = Some(format!("P{n:08}"));
    p
}

/// Registers `payload` for `reseller` with a screening of `decision`.
async fn registration(
    s: &computegate_kyc::Store,
    key: &MasterKey,
    reseller: Uuid,
    payload: &ApplicationPayload,
    decision: ScreeningDecision,
) -> Registration {
    let tier = Tier::new(Tier::ORGANIZATION_VERIFIED).unwrap();
    let screening = screened(decision);
    let new = NewEndCustomer {
        reseller_id: reseller,
        payload,
        screening: &screening,
        tier: &tier,
    };
    let actor = Actor::system("test");
    s.verification()
        .register_end_customer(key, &new, &actor, t0())
        .await
        .unwrap()
}

/// Registers a new identity `payload`; returns the new end customer's id.
async fn register(
    s: &computegate_kyc::Store,
    key: &MasterKey,
    reseller: Uuid,
    payload: &ApplicationPayload,
    decision: ScreeningDecision,
) -> Uuid {
    let r = registration(s, key, reseller, payload, decision).await;
    assert!(!r.already_registered, "{r:?}");
    r.end_customer.id
}

async fn only_verified_organizations_resell_and_screening_decides_end_customers(ctx: Ctx) {
    let s = &ctx.store;
    let verification = s.verification();
    let actor = Actor::system("test");
    // No organization, and marking twice.
    let missing = verification
        .mark_reseller(Uuid::now_v7(), &actor, t0())
        .await;
    assert!(
        matches!(missing, Err(ResellerError::NotFound)),
        "{missing:?}"
    );
    let org = reseller(s, "ceo@resell.example").await;
    let again = verification.mark_reseller(org, &actor, t0()).await;
    assert!(
        matches!(again, Err(ResellerError::AlreadyReseller)),
        "{again:?}"
    );

    let key = key();
    let cleared = register(s, &key, org, &someone(1), ScreeningDecision::Clear).await;
    let review = register(s, &key, org, &someone(2), ScreeningDecision::Review).await;
    let hit = register(s, &key, org, &someone(3), ScreeningDecision::Hit).await;
    let standing = |id| verification.end_customer_standing(org, id);
    assert_eq!(
        standing(cleared).await.unwrap(),
        EndCustomerStanding::Cleared
    );
    assert_eq!(
        standing(review).await.unwrap(),
        EndCustomerStanding::NotCleared
    );
    assert_eq!(
        standing(hit).await.unwrap(),
        EndCustomerStanding::NotCleared
    );
    // The hit suspended that account alone.
    let status = |id| async move {
        s.accounts()
            .customer_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(status(hit).await, CustomerStatus::Suspended);
    assert_eq!(status(cleared).await, CustomerStatus::Active);
    assert_eq!(
        actions(s, &format!("customer:{hit}")).await,
        // Linked with the earlier registrations by their shared card.
        [
            "ledger.group.linked",
            "kyc.end_customer.registered",
            "kyc.customer.suspended"
        ]
    );
    let page = verification
        .end_customers_page(org, None, 10)
        .await
        .unwrap();
    let ids: Vec<Uuid> = page.iter().map(|e| e.id).collect();
    assert_eq!(ids, [hit, review, cleared], "newest first");
    assert_eq!(page[0].status, EndCustomerScreening::Refused);

    // Another reseller neither sees nor runs this one's end customers.
    let rival = reseller(s, "ceo@rival.example").await;
    assert_eq!(
        verification
            .end_customer_standing(rival, cleared)
            .await
            .unwrap(),
        EndCustomerStanding::Unknown
    );
    assert!(
        verification
            .end_customer(rival, cleared)
            .await
            .unwrap()
            .is_none()
    );
    // The same person behind another reseller is linked with the first registration: their
    // runs sum in one group.
    let twin = register(s, &key, rival, &someone(1), ScreeningDecision::Clear).await;
    let group = s.ledger().group_of(twin).await.unwrap().expect("linked");
    assert!(
        group.members.iter().any(|m| m.customer_id == cleared),
        "{group:?}"
    );
    // That group holds the suspended `hit`: cleared by screening or not, the twin waits for
    // staff instead of computing under a new reseller (probe finding).
    assert_eq!(
        verification
            .end_customer_standing(rival, twin)
            .await
            .unwrap(),
        EndCustomerStanding::NotCleared
    );
    let twin_row = verification
        .end_customer(rival, twin)
        .await
        .unwrap()
        .expect("the rival's own");
    assert_eq!(twin_row.status, EndCustomerScreening::Review);
    // The identity is sealed and opens with the master key.
    let identity = verification
        .end_customer_identity(&key, cleared)
        .await
        .unwrap()
        .expect("identity");
    assert_eq!(identity, someone(1));
    chain_intact(s).await;
}

async fn one_identity_is_one_end_customer_per_reseller(ctx: Ctx) {
    let s = &ctx.store;
    let verification = s.verification();
    let key = key();
    let org = reseller(s, "ceo@once.example").await;
    let first = register(s, &key, org, &someone(1), ScreeningDecision::Hit).await;
    // The same person again, spelled otherwise, under a new passport, or under another name
    // on the same passport: the first end customer, as it stands (refused, suspended), and
    // nothing written — not even a screening that would have cleared.
    let mut respelled = someone(1);
    let person = respelled.individual.as_mut().unwrap();
    person.legal_name = Some("EXAMPLE, Person   Number1".into());
    person.id_document.as_mut().unwrap().number = Some("p-0000 0001".into());
    let mut new_passport = someone(1);
    new_passport.individual.as_mut().unwrap().id_document =
        someone(9).individual.unwrap().id_document;
    let mut renamed = someone(9);
    renamed.individual.as_mut().unwrap().id_document = someone(1).individual.unwrap().id_document;
    for again in [someone(1), respelled, new_passport, renamed] {
        let r = registration(s, &key, org, &again, ScreeningDecision::Clear).await;
        assert!(r.already_registered, "{r:?}");
        assert_eq!(r.end_customer.id, first);
        assert_eq!(r.end_customer.status, EndCustomerScreening::Refused);
        assert!(r.end_customer.suspended);
    }
    let rows = super::fixtures::count(&ctx, "SELECT COUNT(*) FROM end_customers").await;
    assert_eq!(rows, 1);
    assert_eq!(
        actions(s, &format!("customer:{first}")).await,
        ["kyc.end_customer.registered", "kyc.customer.suspended"],
        "registered once"
    );
    // A namesake born another day is another person.
    let mut namesake = someone(1);
    let person = namesake.individual.as_mut().unwrap();
    person.date_of_birth = Some("1991-01-01".into());
    person.id_document.as_mut().unwrap().number = Some("P99999999".into());
    let other = register(s, &key, org, &namesake, ScreeningDecision::Clear).await;
    assert_ne!(other, first);
    // An organization is its registration.
    let company = register(s, &key, org, &organization(), ScreeningDecision::Clear).await;
    let again = registration(s, &key, org, &organization(), ScreeningDecision::Clear).await;
    assert!(again.already_registered);
    assert_eq!(again.end_customer.id, company);
    // Keys are keyed hashes: two for a person, one for an organization; nothing in clear.
    let keys = super::fixtures::count(
        &ctx,
        "SELECT COUNT(*) FROM end_customer_identities WHERE length(identity_hash) = 32",
    )
    .await;
    assert_eq!(keys, 2 + 2 + 1);

    // Another reseller registers the same person: its own end customer (its own caps), linked
    // with the first, and shown to staff on both sides.
    let rival = reseller(s, "ceo@rival-once.example").await;
    let theirs = register(s, &key, rival, &someone(1), ScreeningDecision::Clear).await;
    assert_ne!(theirs, first);
    let staff_view = verification
        .end_customer_for_staff(&key, theirs)
        .await
        .unwrap()
        .expect("end customer");
    assert_eq!(
        staff_view.same_identity,
        [SameIdentity {
            id: first,
            reseller_id: org
        }]
    );
    let staff_view = verification
        .end_customer_for_staff(&key, first)
        .await
        .unwrap()
        .expect("end customer");
    assert_eq!(
        staff_view.same_identity,
        [SameIdentity {
            id: theirs,
            reseller_id: rival
        }]
    );
    let company_view = verification
        .end_customer_for_staff(&key, company)
        .await
        .unwrap()
        .expect("end customer");
    assert!(company_view.same_identity.is_empty());
    let registered = s
        .audit()
        .audit_page(&AuditFilter {
            subject: Some(format!("customer:{theirs}")),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.action == "kyc.end_customer.registered")
        .expect("registered record");
    assert_eq!(
        registered.detail["same_identity"],
        serde_json::json!([first.to_string()])
    );
    chain_intact(s).await;
}

/// Registrations of one identity racing through two pools (two replicas) make one end
/// customer: every racer answers with its id, exactly one of them new.
async fn racing_registrations_of_one_identity_make_one_end_customer(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let org = reseller(s, "ceo@race.example").await;
    let replica = computegate_kyc::Store::connect(&ctx.url)
        .await
        .expect("second pool");
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let store = if i % 2 == 0 {
                s.clone()
            } else {
                replica.clone()
            };
            let key = key.clone();
            tokio::spawn(async move {
                registration(&store, &key, org, &someone(7), ScreeningDecision::Clear).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.expect("racer"));
    }
    replica.close().await;
    let new: Vec<&Registration> = answers.iter().filter(|r| !r.already_registered).collect();
    assert_eq!(new.len(), 1, "{answers:?}");
    let id = new[0].end_customer.id;
    assert!(
        answers.iter().all(|r| r.end_customer.id == id),
        "{answers:?}"
    );
    let rows = super::fixtures::count(&ctx, "SELECT COUNT(*) FROM end_customers").await;
    assert_eq!(rows, 1);
    let accounts = super::fixtures::count(
        &ctx,
        "SELECT COUNT(*) FROM customers WHERE email LIKE '%@end-customers.invalid'",
    )
    .await;
    assert_eq!(accounts, 1, "the losers' account rows rolled back");
    chain_intact(s).await;
}

async fn refusals_flag_an_active_reseller_once_and_staff_suspend_it(ctx: Ctx) {
    let s = &ctx.store;
    let verification = s.verification();
    let org = reseller(s, "ceo@flagged.example").await;
    // Refusals older than the window do not count.
    let window_start = t0() + Duration::hours(1);
    for minutes in [0, 70, 80] {
        let at = t0() + Duration::minutes(minutes);
        verification
            .record_reseller_refusal(org, "end_customer_missing", window_start, at)
            .await
            .unwrap();
    }
    let counts = verification
        .record_reseller_refusal(
            org,
            "end_customer_unknown",
            window_start,
            t0() + Duration::minutes(90),
        )
        .await
        .unwrap();
    assert_eq!((counts.refused, counts.total), (3, 3));
    // The one before the window was deleted, not only left out of the count.
    let kept = super::fixtures::count(&ctx, "SELECT COUNT(*) FROM reseller_refusals").await;
    assert_eq!(kept, 3);
    let now = t0() + Duration::minutes(91);
    assert!(
        verification
            .flag_reseller(org, counts, 1.0, now)
            .await
            .unwrap()
    );
    assert!(
        !verification
            .flag_reseller(org, counts, 1.0, now)
            .await
            .unwrap(),
        "once"
    );
    let flagged = verification
        .resellers_page(Some(ResellerStatus::Flagged), None, 10)
        .await
        .unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!(
        (flagged[0].organization_id, flagged[0].refused_share),
        (org, Some(1.0))
    );

    let staff = Actor::system("staff-test");
    let suspended = verification
        .change_reseller(org, ResellerAction::Suspend, "no pass-through", &staff, now)
        .await
        .unwrap();
    assert_eq!(suspended.status, ResellerStatus::Suspended);
    assert_eq!(
        verification.reseller_of(Uuid::now_v7()).await.unwrap(),
        None,
        "an unknown customer acts for no reseller"
    );
    let twice = verification
        .change_reseller(org, ResellerAction::Suspend, "again", &staff, now)
        .await;
    assert!(matches!(
        twice,
        Err(ResellerError::Unchanged(ResellerStatus::Suspended))
    ));
    // A suspended reseller registers no end customers.
    let tier = Tier::new(Tier::ORGANIZATION_VERIFIED).unwrap();
    let screening = screened(ScreeningDecision::Clear);
    let new = NewEndCustomer {
        reseller_id: org,
        payload: &someone(1),
        screening: &screening,
        tier: &tier,
    };
    let refused = verification
        .register_end_customer(&key(), &new, &staff, now)
        .await;
    assert!(
        matches!(refused, Err(ResellerError::Suspended)),
        "{refused:?}"
    );
    verification
        .change_reseller(org, ResellerAction::Resume, "cured", &staff, now)
        .await
        .unwrap();
    assert_eq!(
        actions(s, &format!("organization:{org}")).await,
        [
            "kyc.organization.created",
            "kyc.reseller.marked",
            "kyc.reseller.flagged",
            "kyc.reseller.suspended",
            "kyc.reseller.resumed"
        ]
    );
    chain_intact(s).await;
}

/// The pack of a past year states each reseller and end customer as it stood at the year's
/// end, and each incident's status then: changes after the end (a suspension, a resumption, a
/// refusal, an incident reported) are replayed out of the audit chain, not read as they are now.
async fn the_annual_pack_states_standings_at_the_periods_end(ctx: Ctx) {
    use computegate_kyc::incidents::{IncidentStatus, IndicatorInput, NewIncident};
    use computegate_kyc::ledger::annual::{Period, PolicyVersion, ResellerCount};
    use computegate_kyc::verification::EndCustomerDecision;
    use time::macros::datetime;

    let s = &ctx.store;
    let verification = s.verification();
    let key = key();
    let in_2030 = |month: i64| t0() + Duration::days(30 * month);
    let after = datetime!(2031-02-01 0:00 UTC);
    let steady = reseller(s, "ceo@steady.example").await;
    let flagged = reseller(s, "ceo@flagged-2030.example").await;
    // Refused (a hit) and suspended at registration, unchanged since.
    register(s, &key, steady, &someone(1), ScreeningDecision::Hit).await;
    let refused_after = register(s, &key, steady, &someone(2), ScreeningDecision::Review).await;
    let suspended_then = register(s, &key, steady, &someone(3), ScreeningDecision::Clear).await;
    let suspended_after = register(s, &key, steady, &someone(4), ScreeningDecision::Clear).await;
    let senior = staff(s, "senior@annual.example", StaffRole::SeniorReviewer).await;
    let staff_actor = Actor::system("staff-test");
    let master = key.clone();
    let incident = |customer| NewIncident {
        kind: "fraud".into(),
        description: "card testing".into(),
        customers: vec![customer],
        indicators: vec![IndicatorInput {
            kind: "email_domain".into(),
            value: "resold.example".into(),
        }],
        ..NewIncident::default()
    };
    let open_then = s
        .incidents()
        .create_incident(
            &master,
            &incident(suspended_then).validate().unwrap(),
            &staff_actor,
            in_2030(1),
        )
        .await
        .unwrap()
        .id;
    let reported_then = s
        .incidents()
        .create_incident(
            &master,
            &incident(suspended_after).validate().unwrap(),
            &staff_actor,
            in_2030(1),
        )
        .await
        .unwrap()
        .id;

    // Within 2030.
    verification
        .suspend_customer(&senior, suspended_then, "chargebacks", in_2030(2))
        .await
        .unwrap();
    s.incidents()
        .set_incident_status(
            reported_then,
            IncidentStatus::Reported,
            &staff_actor,
            in_2030(4),
        )
        .await
        .unwrap();
    let counts = RefusalCounts {
        refused: 30,
        total: 40,
    };
    assert!(
        verification
            .flag_reseller(flagged, counts, 0.75, in_2030(5))
            .await
            .unwrap()
    );
    // After 2030.
    verification
        .change_reseller(
            steady,
            ResellerAction::Suspend,
            "no pass-through",
            &staff_actor,
            after,
        )
        .await
        .unwrap();
    verification
        .change_reseller(
            flagged,
            ResellerAction::Resume,
            "reviewed",
            &staff_actor,
            after,
        )
        .await
        .unwrap();
    verification
        .decide_end_customer(
            refused_after,
            EndCustomerDecision::Refuse,
            "listed",
            &staff_actor,
            after,
        )
        .await
        .unwrap();
    verification
        .resume_customer(&senior, suspended_then, "chargebacks repaid", after)
        .await
        .unwrap();
    verification
        .suspend_customer(&senior, suspended_after, "fraud", after)
        .await
        .unwrap();
    s.incidents()
        .set_incident_status(open_then, IncidentStatus::Reported, &staff_actor, after)
        .await
        .unwrap();

    let now = datetime!(2031-06-01 0:00 UTC);
    let pack = |year| async move {
        let period = Period::year(year, now).unwrap();
        s.ledger()
            .annual_pack(&period, PolicyVersion::default())
            .await
            .unwrap()
    };
    let of = |pack: &computegate_kyc::ledger::annual::AnnualPack, org: Uuid| -> ResellerCount {
        pack.resellers
            .resellers
            .iter()
            .find(|r| r.organization_id == org)
            .cloned()
            .expect("reseller in the pack")
    };
    let figures = |r: &ResellerCount| {
        (
            r.standing.clone(),
            r.end_customers,
            r.added,
            r.suspended,
            r.refused,
        )
    };
    let then = pack(2030).await;
    // Suspended at the end of 2030: the denied-party hit (unchanged since) and the one staff
    // suspended in 2030 and resumed after; refused by then: the hit alone.
    assert_eq!(figures(&of(&then, steady)), ("active".into(), 4, 4, 2, 1));
    assert_eq!(of(&then, flagged).standing, "flagged");
    assert_eq!(
        then.incidents.by_status.get("open"),
        Some(&1),
        "{:?}",
        then.incidents
    );
    assert_eq!(then.incidents.by_status.get("reported"), Some(&1));
    let current = pack(2031).await;
    assert_eq!(
        figures(&of(&current, steady)),
        ("suspended".into(), 4, 0, 3, 2)
    );
    assert_eq!(of(&current, flagged).standing, "active");
    assert!(
        current.incidents.by_status.is_empty(),
        "none recorded in 2031"
    );
    chain_intact(s).await;
}

crate::store_suite!(
    only_verified_organizations_resell_and_screening_decides_end_customers,
    one_identity_is_one_end_customer_per_reseller,
    racing_registrations_of_one_identity_make_one_end_customer,
    the_annual_pack_states_standings_at_the_periods_end,
    refusals_flag_an_active_reseller_once_and_staff_suspend_it,
);
