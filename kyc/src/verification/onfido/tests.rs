//! Onfido notices and resources, from the fixtures in `kyc/tests/data/onfido/` (sources named
//! in its README).

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::*;
use crate::verification::IdvProvider;
use crate::verification::webhooks::{
    DEFAULT_TOLERANCE, WebhookSecret, WebhookSecrets, verify_signature,
};

const CHECK_COMPLETED: &str =
    include_str!("../../../tests/data/onfido/webhook_check_completed.json");
const RUN_COMPLETED: &str =
    include_str!("../../../tests/data/onfido/webhook_workflow_run_completed.json");
const API_CHECK: &str = include_str!("../../../tests/data/onfido/api_check.json");
const API_REPORT: &str = include_str!("../../../tests/data/onfido/api_report.json");
const API_RUN: &str = include_str!("../../../tests/data/onfido/api_workflow_run.json");

fn app() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042)
}

fn api(text: &str) -> Value {
    serde_json::from_str(&text.replace("{{application_id}}", &app().to_string())).unwrap()
}

#[test]
fn onfido_published_signatures_verify() {
    for (body, token, sig) in [
        (
            CHECK_COMPLETED,
            "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh",
            "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7",
        ),
        (
            RUN_COMPLETED,
            "sgx0lCZimfQBJHnuiKJaNUF76yQZfD94",
            "de43e2a218c589d6bb750d9d7014744d378660cd106886f722f72a9c0eef3027",
        ),
    ] {
        let secrets = WebhookSecrets::single(WebhookSecret::new(token));
        let now = OffsetDateTime::now_utc();
        verify_signature(
            IdvProvider::Onfido,
            Some(sig),
            body.as_bytes(),
            &secrets,
            now,
            DEFAULT_TOLERANCE,
        )
        .unwrap();
    }
}

#[test]
fn documented_notices_name_the_resource_to_fetch() {
    let check = notice(&serde_json::from_str(CHECK_COMPLETED).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(check.resource, OnfidoResource::Check);
    assert_eq!(check.id.to_string(), "f2302f45-227d-413d-ad61-09ec077a086a");
    assert_eq!(
        check.event_id,
        "check.completed:f2302f45-227d-413d-ad61-09ec077a086a"
    );
    let run = notice(&serde_json::from_str(RUN_COMPLETED).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(run.resource, OnfidoResource::WorkflowRun);
    assert_eq!(
        run.event_id,
        "workflow_run.completed:d19692d6-730a-4730-9005-82185a5ec595"
    );
    let report = json!({"payload": {"resource_type": "report", "action": "report.completed",
        "object": {"id": "6b7b4c5e-51f6-4b5b-8a4f-0bf1a7d1b3e2", "status": "complete",
        "href": "https://api.onfido.com/v3.6/reports/6b7b4c5e-51f6-4b5b-8a4f-0bf1a7d1b3e2"}}});
    assert_eq!(
        notice(&report).unwrap().unwrap().resource,
        OnfidoResource::Report
    );

    // Actions we do not consume are acknowledged; a body without action or id is refused.
    let started = json!({"payload": {"action": "check.started", "object": {"id": "x"}}});
    assert_eq!(notice(&started), Ok(None));
    assert_eq!(notice(&json!({})), Err(WebhookError::MalformedPayload));
    let bad_id =
        json!({"payload": {"action": "check.completed", "object": {"id": "../applicants"}}});
    assert_eq!(notice(&bad_id), Err(WebhookError::MalformedPayload));
}

#[test]
fn a_fetched_check_decides_by_result_and_tag() {
    let check = api(API_CHECK);
    assert_eq!(
        resolve(OnfidoResource::Check, &check),
        Ok(Resolved::Outcome {
            key: "check:f2302f45-227d-413d-ad61-09ec077a086a".into(),
            application_id: app(),
            outcome: IdvOutcome::Verified,
        })
    );
    let mut consider = check.clone();
    consider["result"] = json!("consider");
    assert!(matches!(
        resolve(OnfidoResource::Check, &consider),
        Ok(Resolved::Outcome {
            outcome: IdvOutcome::RequiresInput,
            ..
        })
    ));
    let mut running = check.clone();
    running["status"] = json!("in_progress");
    running["result"] = Value::Null;
    assert_eq!(
        resolve(OnfidoResource::Check, &running),
        Ok(Resolved::NotFinal)
    );
    let mut untagged = check.clone();
    untagged["tags"] = json!(["computegate"]);
    assert_eq!(
        resolve(OnfidoResource::Check, &untagged),
        Err(ResolveError::MissingReference)
    );
    let mut no_result = check;
    no_result["result"] = Value::Null;
    assert_eq!(
        resolve(OnfidoResource::Check, &no_result),
        Err(ResolveError::Malformed("result"))
    );
}

#[test]
fn a_report_follows_its_check() {
    assert_eq!(
        resolve(OnfidoResource::Report, &api(API_REPORT)),
        Ok(Resolved::FollowCheck(
            Uuid::parse_str("f2302f45-227d-413d-ad61-09ec077a086a").unwrap()
        ))
    );
}

#[test]
fn workflow_run_statuses_map_to_outcomes() {
    for (status, outcome) in [
        ("approved", Some(IdvOutcome::Verified)),
        ("declined", Some(IdvOutcome::Failed)),
        ("review", Some(IdvOutcome::RequiresInput)),
        ("abandoned", Some(IdvOutcome::RequiresInput)),
        ("error", Some(IdvOutcome::RequiresInput)),
        ("processing", None),
        ("awaiting_input", None),
    ] {
        let mut run = api(API_RUN);
        run["status"] = json!(status);
        let expected = match outcome {
            Some(outcome) => Resolved::Outcome {
                key: "workflow_run:d19692d6-730a-4730-9005-82185a5ec595".into(),
                application_id: app(),
                outcome,
            },
            None => Resolved::NotFinal,
        };
        assert_eq!(
            resolve(OnfidoResource::WorkflowRun, &run),
            Ok(expected),
            "{status}"
        );
    }
    let mut odd = api(API_RUN);
    odd["status"] = json!("finished");
    assert_eq!(
        resolve(OnfidoResource::WorkflowRun, &odd),
        Err(ResolveError::Malformed("status"))
    );
}

#[test]
fn urls_stay_in_the_configured_api() {
    let id = Uuid::parse_str("f2302f45-227d-413d-ad61-09ec077a086a").unwrap();
    assert_eq!(
        OnfidoResource::Check.url(OnfidoRegion::Eu.base_url(), id),
        "https://api.eu.onfido.com/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"
    );
    assert_eq!(
        OnfidoResource::WorkflowRun.url("http://127.0.0.1:9/v3.6/", id),
        "http://127.0.0.1:9/v3.6/workflow_runs/f2302f45-227d-413d-ad61-09ec077a086a"
    );
    assert_eq!(
        "US".parse::<OnfidoRegion>().unwrap().base_url(),
        "https://api.us.onfido.com/v3.6"
    );
    assert_eq!("ca".parse::<OnfidoRegion>().unwrap(), OnfidoRegion::Ca);
    assert!("ap".parse::<OnfidoRegion>().is_err());
}
