//! Signed usage events from the simulator to the gateway, as a real compute platform would send
//! them: for each job the gateway admitted (it forwards `X-Computegate-Job`), `started` once the
//! job runs, `heartbeat` with cumulative accelerator-seconds while it runs, and `finished` when it
//! ends. Events are signed `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>` and retried on the
//! next tick when the gateway does not acknowledge them (ids make retries harmless).

use std::sync::Arc;

use bytes::Bytes;
use computegate_kyc::verification::webhooks::{WebhookSecret, sign_timestamped};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use super::jobs::Status;
use super::state::{Sim, UsageReporting};

/// Reports usage of simulator job `job` (ledger job `ledger_job`) until it ends.
pub(crate) async fn report(
    sim: Arc<Sim>,
    job: Uuid,
    ledger_job: String,
    reporting: Arc<UsageReporting>,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let secret = WebhookSecret::new(reporting.secret.clone());
    let mut started_sent = false;
    let mut beat = 0u64;
    let mut tick = tokio::time::interval(reporting.interval);
    loop {
        tick.tick().await;
        if *sim.shutdown().borrow() {
            return;
        }
        let Ok((status, seconds, gpu)) = sim.with_job(&job.to_string(), None, |j, now| {
            let state = super::jobs::progress(j, now);
            (state.status, state.accelerator_seconds, j.spec.gpu.id)
        }) else {
            return;
        };
        let send = |kind: &str, id: String, seconds: Option<f64>| {
            let body = serde_json::json!({
                "event_id": id,
                "job_id": ledger_job,
                "kind": kind,
                "accelerator_seconds": seconds,
                "accelerator_type": gpu,
                "at": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            });
            post(&client, &reporting.url, &secret, body.to_string())
        };
        if status != Status::Queued && !started_sent {
            started_sent = send("started", format!("{ledger_job}:started"), None).await;
        }
        match status {
            Status::Queued => {}
            Status::Running => {
                beat += 1;
                send(
                    "heartbeat",
                    format!("{ledger_job}:beat:{beat}"),
                    Some(seconds),
                )
                .await;
            }
            _ => {
                if started_sent
                    && send("finished", format!("{ledger_job}:finished"), Some(seconds)).await
                {
                    return;
                }
            }
        }
    }
}

/// Posts one signed event; true when the gateway acknowledged it (2xx).
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &http::Uri,
    secret: &WebhookSecret,
    body: String,
) -> bool {
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let signature = format!("t={t},v1={}", sign_timestamped(secret, t, body.as_bytes()));
    let request = http::Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-computegate-signature", signature)
        .body(Full::new(Bytes::from(body)));
    let Ok(request) = request else { return false };
    match client.request(request).await {
        Ok(resp) if resp.status().is_success() => true,
        Ok(resp) => {
            tracing::warn!(status = %resp.status(), "usage event refused by the gateway");
            // A 4xx will not get better by retrying the same event; stop re-sending it.
            resp.status().is_client_error()
        }
        Err(e) => {
            tracing::debug!(error = %e, "usage event not delivered; retrying next tick");
            false
        }
    }
}
