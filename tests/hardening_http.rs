//! HTTP hygiene against hostile clients, through the real binary: header names that normalize
//! to reserved ones, client-address headers other upstreams trust, duplicate or missing `Host`,
//! early refusals on a POST whose body is still coming, and a staff query that used to panic.

mod kyc_support;
mod support;

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use kyc_support::{Kyc, STRIPE_SECRET, stripe_event, stripe_signature, unix_now as kyc_unix_now};
use support::identity::{IdGateway, Setup, identity_config, master_key};
use support::metering::{
    Backend, Meter, USAGE_SECRET, unix_now as metering_unix_now, usage_event, usage_signature,
};
use support::raw::tcp_exchange;
use support::{Gateway, Sim, TEST_TIMEOUT, client, expect_problem, sim_everything, within};

/// Values of header `name` as the simulator received them (`[]` when absent).
fn seen(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The status line's code of a raw HTTP/1.1 answer.
fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn names_that_normalize_to_reserved_headers_never_reach_the_upstream() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let resp = client()
            .get(gw.url("/v1/echo"))
            .header("X_Computegate_Tier", "validated_end_user")
            .header("x_computegate-customer", "someone-else")
            .header("X_Forwarded_For", "203.0.113.66")
            .header("X-Real-IP", "203.0.113.66")
            .header("True-Client-IP", "203.0.113.66")
            .header("CF_Connecting_IP", "203.0.113.66")
            .header("X-Original-URL", "/admin")
            .header("X-Rewrite-URL", "/admin")
            .header("X-Forwarded-Port", "443")
            .header("x-computegate-run", "run-1")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        let echo: Value = resp.json().await.expect("echo JSON");
        let names: Vec<String> = echo["headers"]
            .as_object()
            .expect("headers")
            .keys()
            .cloned()
            .collect();
        for name in &names {
            let normalized = name.replace('_', "-");
            assert!(
                !normalized.starts_with("x-computegate-") || name == "x-computegate-run",
                "{name} reached the upstream: {names:?}"
            );
            assert!(
                !name.contains('_'),
                "{name} (underscore spelling of a reserved header) reached the upstream"
            );
        }
        for gone in [
            "true-client-ip",
            "cf-connecting-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-forwarded-port",
        ] {
            assert!(seen(&echo, gone).is_empty(), "{gone} reached the upstream");
        }
        assert_eq!(seen(&echo, "x-real-ip"), ["127.0.0.1"], "replaced");
        assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(
            seen(&echo, "x-computegate-run"),
            ["run-1"],
            "allowed one kept"
        );
    })
    .await;
}

#[tokio::test]
async fn the_client_address_header_list_is_configurable() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let server = "client_ip_headers = [\"X-Client-Address\"]\nset_x_real_ip = false";
        let gw = Gateway::start(&sim_everything(sim.addr, server, "")).await;
        let resp = client()
            .get(gw.url("/v1/echo"))
            .header("x_client_address", "203.0.113.66")
            .header("True-Client-IP", "203.0.113.7")
            .send()
            .await
            .expect("send");
        let echo: Value = resp.json().await.expect("echo JSON");
        assert!(seen(&echo, "x_client_address").is_empty());
        assert_eq!(seen(&echo, "true-client-ip"), ["203.0.113.7"], "not listed");
        assert!(seen(&echo, "x-real-ip").is_empty(), "not set when disabled");
    })
    .await;
}

#[tokio::test]
async fn two_host_headers_or_none_on_http_1_1_are_bad_requests() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let limit = Duration::from_secs(10);
        let two = b"GET /v1/echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n";
        let raw = tcp_exchange(gw.public, two, limit).await;
        assert_eq!(status_of(&raw), 400, "{}", String::from_utf8_lossy(&raw));
        assert!(String::from_utf8_lossy(&raw).contains("more than one Host"));
        let none = b"GET /v1/echo HTTP/1.1\r\nConnection: close\r\n\r\n";
        let raw = tcp_exchange(gw.public, none, limit).await;
        assert_eq!(status_of(&raw), 400, "{}", String::from_utf8_lossy(&raw));
        assert!(String::from_utf8_lossy(&raw).contains("needs a Host"));
        // HTTP/1.0 did not require `Host`.
        let old = b"GET /v1/echo HTTP/1.0\r\n\r\n";
        let raw = tcp_exchange(gw.public, old, limit).await;
        assert_eq!(status_of(&raw), 200, "{}", String::from_utf8_lossy(&raw));
        assert_eq!(sim.proc.stderr().matches("panicked").count(), 0);
    })
    .await;
}

#[tokio::test]
async fn an_early_refusal_of_a_post_whose_body_follows_closes_the_connection_openly() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let mut stream = TcpStream::connect(gw.public).await.expect("connect");
        // The head alone: the body has not been sent when the 401 is decided.
        let head = "POST /v1/jobs HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n\
                    content-length: 64\r\n\r\n";
        stream.write_all(head.as_bytes()).await.expect("write head");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
            let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .expect("read");
            assert!(n > 0, "closed without an answer");
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        assert_eq!(status_of(&buf), 401, "{text}");
        assert!(
            text.contains("\r\nconnection: close\r\n"),
            "an early refusal must say the connection closes: {text}"
        );
        // A request without a body keeps its connection.
        let resp = client().get(gw.url("/v1/echo")).send().await.expect("send");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().get("connection").is_none());
    })
    .await;
}

/// A control-plane handler that answers before reading the whole body (a JSON body past the
/// route's limit) leaves the rest of it on the connection, which hyper then closes. The answer
/// must say so: a pooled client that reused the connection failed its next request with
/// `IncompleteMessage` (seen in CI). A body read to its end keeps the connection.
#[tokio::test]
async fn a_handler_that_answers_before_the_body_ends_says_the_connection_closes() {
    within(TEST_TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let c = kyc.customer().await;
        // Raw: 1 MiB announced, 512 KiB sent, the rest never comes; the route's limit is far
        // below either, so the 413 is decided while the body is still unread.
        let stream = TcpStream::connect(kyc.gw.public).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /computegate/v1/kyc/applications HTTP/1.1\r\nHost: gw\r\n\
             authorization: Bearer {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{{\"intended_use\":\"",
            c.access,
            1024 * 1024
        );
        let sender = tokio::spawn(async move {
            // A write may fail once the gateway has answered and closed: that is the point.
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&vec![b'x'; 512 * 1024]).await;
            writer
        });
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
            let n = tokio::time::timeout_at(deadline, reader.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .expect("read");
            assert!(n > 0, "closed without an answer");
            buf.extend_from_slice(&chunk[..n]);
        }
        drop(sender);
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        assert_eq!(status_of(&buf), 413, "{text}");
        assert!(
            text.contains("\r\nconnection: close\r\n"),
            "an answer before the body ends must say the connection closes: {text}"
        );

        // A pooled client: whether or not the gateway read the whole body before its 413,
        // the next request on the same client never lands on a closing connection.
        let mut huge = kyc_support::individual("A B", "1990-01-01", "DE", "X1");
        huge["intended_use"]["description"] = serde_json::json!("x".repeat(300 * 1024));
        for _ in 0..10 {
            let resp = kyc
                .customer_call(&c, reqwest::Method::POST, "", Some(&huge))
                .await;
            expect_problem(resp, 413, "payload-too-large").await;
            let resp = kyc.customer_call(&c, reqwest::Method::GET, "", None).await;
            assert_eq!(resp.status(), 200, "{resp:?}");
        }
        // Not JSON, but read to its end: the answer keeps the connection.
        let resp = kyc
            .http
            .post(kyc.gw.url("/computegate/v1/kyc/applications"))
            .header("authorization", format!("Bearer {}", c.access))
            .body("{not json")
            .send()
            .await
            .expect("send");
        assert!(resp.headers().get("connection").is_none(), "{resp:?}");
        expect_problem(resp, 422, "invalid-request").await;
    })
    .await;
}

/// A proxied POST whose body the upstream read to its end keeps its connection: the
/// `Connection: close` of early answers must not cost every upload a new connection.
#[tokio::test]
async fn a_proxied_post_read_to_its_end_keeps_the_connection() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let http = client();
        for size in [0usize, 1024, 256 * 1024] {
            let resp = http
                .post(gw.url("/v1/echo"))
                .header("content-type", "application/octet-stream")
                .body(vec![b'x'; size])
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 200, "{size} bytes: {resp:?}");
            assert!(
                resp.headers().get("connection").is_none(),
                "{size} bytes: {resp:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_age_beyond_the_calendar_is_a_bad_parameter_not_a_dropped_connection() {
    within(Duration::from_secs(120), async {
        let kyc = Kyc::start(&Setup::default()).await;
        let staff = kyc.staff("reviewer").await;
        for age in ["9999999999999d", "106751991167300d", "9223372036854775807"] {
            let resp = kyc
                .staff_get(&staff, &format!("/staff/v1/applications?older_than={age}"))
                .await;
            let doc = expect_problem(resp, 422, "invalid-request").await;
            assert!(doc.to_string().contains("older_than"), "{doc}");
        }
        let resp = kyc
            .staff_get(&staff, "/staff/v1/applications?older_than=7d")
            .await;
        assert_eq!(resp.status(), 200);
        assert!(!kyc.gw.proc.stderr().contains("panicked"));
    })
    .await;
}

#[tokio::test]
async fn job_numbers_out_of_range_and_duplicate_keys_are_refused_before_admission() {
    within(Duration::from_secs(120), async {
        let meter = Meter::start(Backend::Sqlite, None).await;
        let c = meter.customer().await;
        let bodies: [(&str, &str); 6] = [
            (
                "/v1/echo/jobs",
                r#"{"gpu_type":"h100","gpu_count":1,"max_duration_hours":5e-324}"#,
            ),
            (
                "/v1/echo/jobs",
                r#"{"gpu_type":"h100","gpu_count":1,"max_duration_hours":0.0001}"#,
            ),
            (
                "/v1/echo/jobs",
                r#"{"gpu_type":"h100","gpu_count":1,"gpu_count":64,"max_duration_hours":1}"#,
            ),
            (
                "/v1/echo/jobs",
                r#"{"gpu_type":"h100","gpu_count":1,"max_duration_hours":1,"model":{"parameters":1,"parameters":7e9}}"#,
            ),
            (
                "/v1/echo/slurm",
                r#"{"job":{"time_limit":60,"tres_per_node":"gres/gpu:1","tres_per_node":"gres/gpu:8"}}"#,
            ),
            (
                "/v1/echo/kubernetes",
                r#"{"apiVersion":"batch/v1","kind":"Job","spec":{"parallelism":1,"parallelism":64}}"#,
            ),
        ];
        for (path, body) in bodies {
            let resp = meter.post_raw(&meter.gw, &c, path, body).await;
            let doc = expect_problem(resp, 400, "invalid-job-spec").await;
            assert!(
                !doc.to_string().is_empty(),
                "refused with a reason: {body} → {doc}"
            );
        }
        assert!(
            meter.sim_jobs().await.is_empty(),
            "nothing reached the upstream"
        );
        // A sane job still goes through.
        let ok = meter
            .post_raw(
                &meter.gw,
                &c,
                "/v1/echo/jobs",
                r#"{"gpu_type":"h100","gpu_count":1,"max_duration_hours":0.5}"#,
            )
            .await;
        assert_eq!(ok.status(), 200, "{ok:?}");
    })
    .await;
}

#[tokio::test]
async fn signed_intake_bounds_signature_entries_and_body_size_before_any_mac() {
    within(Duration::from_secs(120), async {
        let meter = Meter::start(Backend::Sqlite, None).await;
        let t = metering_unix_now();
        let event = usage_event(
            "ev-1",
            &uuid::Uuid::new_v4().to_string(),
            "started",
            None,
            "h100",
        );
        let body = event.to_string();
        let good = usage_signature(USAGE_SECRET, t, &body);
        let post = |signature: String, body: String| {
            meter
                .http
                .post(meter.gw.url("/computegate/v1/meter/usage"))
                .header("content-type", "application/json")
                .header("x-computegate-signature", signature)
                .body(body)
                .send()
        };
        // The valid signature hidden after 469 bogus entries: refused without trying them all.
        let v1 = good.split_once(",v1=").expect("v1").1.to_owned();
        let flood = format!(
            "t={t}{},v1={v1}",
            format!(",v1={}", "ab".repeat(32)).repeat(469)
        );
        let resp = post(flood, body.clone()).await.expect("send");
        expect_problem(resp, 401, "bad-signature").await;
        // A body far beyond any real event is refused before the MAC, even when signed.
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100 * 1024));
        let resp = post(usage_signature(USAGE_SECRET, t, &big), big)
            .await
            .expect("send");
        assert_eq!(resp.status(), 413, "{resp:?}");
        // The ordinary signature still works (an unknown job: 404 after verification).
        let resp = post(good, body).await.expect("send");
        assert_eq!(resp.status(), 404, "{resp:?}");
    })
    .await;
}

#[tokio::test]
async fn idv_webhooks_bound_the_number_of_v1_entries() {
    within(Duration::from_secs(120), async {
        let kyc = Kyc::start(&Setup::default()).await;
        let body = stripe_event("evt_1", "verified", &uuid::Uuid::new_v4().to_string());
        let t = kyc_unix_now();
        let good = stripe_signature(STRIPE_SECRET, t, &body);
        let v1 = good.split_once(",v1=").expect("v1").1.to_owned();
        let flood = format!(
            "t={t}{},v1={v1}",
            format!(",v1={}", "ab".repeat(32)).repeat(469)
        );
        let resp = kyc
            .webhook("stripe", &[("stripe-signature", flood)], &body)
            .await;
        assert_eq!(resp.status(), 401, "{resp:?}");
        let resp = kyc
            .webhook("stripe", &[("stripe-signature", good)], &body)
            .await;
        assert_ne!(resp.status(), 401, "the plain signature verifies: {resp:?}");
    })
    .await;
}

/// Writes `head`, then `body` one byte every `every`, while reading the answer; stops writing
/// once the gateway answers or closes. Returns what was read and when the reading ended.
async fn trickle(
    addr: std::net::SocketAddr,
    head: String,
    body: Vec<u8>,
    every: Duration,
    limit: Duration,
) -> (Vec<u8>, Duration) {
    let start = tokio::time::Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.expect("write head");
    let writer = tokio::spawn(async move {
        for b in body {
            tokio::time::sleep(every).await;
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
        }
        // Keep the write half open: a closed one would end the exchange for another reason.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        read.is_ok(),
        "connection still open after {limit:?}; got {:?}",
        String::from_utf8_lossy(&out)
    );
    (out, start.elapsed())
}

/// Asserts a raw answer is the 408 `body-timeout` problem that closes the connection.
fn assert_body_timeout(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw).to_lowercase();
    assert_eq!(status_of(raw), 408, "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(
        text.contains("content-type: application/problem+json"),
        "{text}"
    );
    assert!(text.contains("problems/body-timeout"), "{text}");
}

const SLOW_BODY: &str = "body_read_timeout = \"1s\"\nbody_min_rate = \"1KiB\"";

#[tokio::test]
async fn a_trickled_body_gets_408_and_the_connection_closes_on_proxied_and_control_routes() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        // Streamed to the upstream.
        let gw = Gateway::start(&sim_everything(sim.addr, SLOW_BODY, "")).await;
        let head = "POST /v1/echo HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n\
                    content-length: 64\r\n\r\n"
            .to_string();
        let every = Duration::from_millis(250);
        let (raw, took) = trickle(
            gw.public,
            head,
            vec![b'x'; 64],
            every,
            Duration::from_secs(10),
        )
        .await;
        assert_body_timeout(&raw);
        assert!(took < Duration::from_secs(6), "cut off after {took:?}");
        // A control-plane handler reading a trickled sign-up body.
        let body = identity_config(sim.addr, &Setup::default()).replacen(
            "[server]\n",
            &format!("[server]\n{SLOW_BODY}\n"),
            1,
        );
        let key = master_key();
        let id = Gateway::start_with_env(&body, &[("COMPUTEGATE_MASTER_KEY", &key)]).await;
        let head = "POST /computegate/v1/auth/signup HTTP/1.1\r\nHost: gw\r\n\
                    content-type: application/json\r\ncontent-length: 80\r\n\r\n"
            .to_string();
        let (raw, took) = trickle(
            id.public,
            head,
            vec![b' '; 80],
            every,
            Duration::from_secs(10),
        )
        .await;
        assert_body_timeout(&raw);
        assert!(took < Duration::from_secs(6), "cut off after {took:?}");
        assert!(!gw.proc.stderr().contains("panicked"));
        assert!(!id.proc.stderr().contains("panicked"));
    })
    .await;
}

#[tokio::test]
async fn a_trickled_job_submission_gets_408_without_a_reservation() {
    within(Duration::from_secs(120), async {
        let meter = Meter::start_edited(Backend::Sqlite, None, |config| {
            config.replacen("[server]\n", &format!("[server]\n{SLOW_BODY}\n"), 1)
        })
        .await;
        let c = meter.customer().await;
        let spec = r#"{"gpu_type":"h100","gpu_count":1,"max_duration_hours":0.5}          "#;
        let head = format!(
            "POST /v1/echo/jobs HTTP/1.1\r\nHost: gw\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            c.access,
            spec.len()
        );
        let every = Duration::from_millis(250);
        let limit = Duration::from_secs(10);
        let (raw, _) = trickle(
            meter.gw.public,
            head,
            spec.as_bytes().to_vec(),
            every,
            limit,
        )
        .await;
        assert_body_timeout(&raw);
        assert!(
            meter.sim_jobs().await.is_empty(),
            "nothing reached the upstream"
        );
    })
    .await;
}

#[tokio::test]
async fn a_body_at_the_minimum_rate_outlasts_the_base_timeout() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, SLOW_BODY, "")).await;
        // 6 KiB at ~4 KiB/s: 1.5 s, past the 1 s base, but every KiB earns another second.
        let body = vec![b'a'; 6 * 1024];
        let stream = TcpStream::connect(gw.public).await.expect("connect");
        let (mut rd, mut wr) = stream.into_split();
        let head = format!(
            "POST /v1/echo HTTP/1.1\r\nHost: gw\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        wr.write_all(head.as_bytes()).await.expect("head");
        for chunk in body.chunks(256) {
            tokio::time::sleep(Duration::from_millis(62)).await;
            wr.write_all(chunk).await.expect("body");
        }
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut out))
            .await
            .expect("answered")
            .expect("read");
        assert_eq!(status_of(&out), 200, "{}", String::from_utf8_lossy(&out));
    })
    .await;
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn an_http2_header_block_left_open_closes_the_connection() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let server = "header_read_timeout = \"1s\"";
        let gw = Gateway::start(&sim_everything(sim.addr, server, "")).await;
        let mut stream = TcpStream::connect(gw.public).await.expect("connect");
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
        // HEADERS on stream 1 (`:method GET`, `:scheme http`) without END_HEADERS: the
        // CONTINUATION that would finish the block never comes.
        hello.extend(h2_frame(0x1, 0x1, 1, &[0x82, 0x86]));
        let start = tokio::time::Instant::now();
        stream.write_all(&hello).await.expect("write");
        let mut sink = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "connection still open after 15 s");
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "closed only after {:?}",
            start.elapsed()
        );
        // A complete request on a new HTTP/2 connection is still served.
        support::install_crypto();
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .no_proxy()
            .build()
            .expect("h2 client");
        let resp = h2.get(gw.url("/v1/echo")).send().await.expect("h2 request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    })
    .await;
}
