//! Black-box tests of the data plane through the real binary, against the simulator: what the
//! gateway forwards (method, path, query, body, headers), the header hygiene it applies
//! (hop-by-hop removal, `X-Forwarded-*`/`Forwarded`, request ids, spoofed identity headers), and
//! the streaming exchanges that must pass through unchanged (server-sent events, WebSocket).

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Empty;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use support::raw::h1_exchange;
use support::{
    Gateway, Sim, TEST_TIMEOUT, client, config, route, sim_everything, upstream, within,
};

/// The simulator's `/v1/echo` answer to a request sent through the gateway.
async fn echo(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "echo answered {resp:?}");
    resp.json().await.expect("echo JSON")
}

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

#[tokio::test]
async fn forwards_method_path_query_body_and_headers() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let http = client();

        let resp = http
            .put(gw.url("/v1/echo/a%20b/c?x=1&x=2&y=two%20words&z=a%2Fb&flag"))
            .header("x-custom", "v1")
            .header("x-multi", "first")
            .header("x-multi", "second")
            .header("content-type", "application/octet-stream")
            .body(vec![7u8; 12_345])
            .send()
            .await
            .expect("send");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let e = echo(resp).await;
        assert_eq!(e["method"], "PUT");
        assert_eq!(e["path"], "/v1/echo/a%20b/c");
        assert_eq!(e["query"], "x=1&x=2&y=two%20words&z=a%2Fb&flag");
        assert_eq!(e["version"], "HTTP/1.1");
        assert_eq!(e["body_bytes"], 12_345);
        assert_eq!(seen(&e, "x-custom"), ["v1"]);
        assert_eq!(seen(&e, "x-multi"), ["first", "second"]);
        assert_eq!(seen(&e, "content-type"), ["application/octet-stream"]);
        assert_eq!(seen(&e, "content-length"), ["12345"]);
        assert_eq!(seen(&e, "host"), [gw.public.to_string()]);

        for method in ["GET", "POST", "DELETE", "PATCH", "OPTIONS"] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let e = echo(
                http.request(m, gw.url("/v1/echo"))
                    .send()
                    .await
                    .expect("send"),
            )
            .await;
            assert_eq!(e["method"], method);
            assert_eq!(e["query"], Value::Null, "{method}");
            assert_eq!(e["body_bytes"], 0, "{method}");
        }

        // A body of unknown length goes upstream chunked, every byte of it.
        let chunks = (0..3).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 1000])));
        let resp = http
            .post(gw.url("/v1/echo"))
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .expect("send");
        let e = echo(resp).await;
        assert_eq!(e["body_bytes"], 3000);
        assert_eq!(seen(&e, "transfer-encoding"), ["chunked"]);
        assert!(seen(&e, "content-length").is_empty(), "{e}");
    })
    .await;
}

/// Routes match the raw path and the exact method, so what an upstream might read differently
/// — dot or empty segments, encoded separators, a method in lower case — is refused with 400
/// before routing, never forwarded past the route it would really reach (here the metered job
/// route, reached through the public ping route or by a lower-case method).
#[tokio::test]
async fn paths_and_methods_an_upstream_could_read_differently_are_refused() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        for (method, path) in [
            ("GET", "/v1/echo/../jobs"),
            ("GET", "/v1/echo/%2e%2e/jobs"),
            ("GET", "/v1/echo/./x"),
            ("GET", "/v1//echo"),
            ("GET", "/v1/echo%2Fx"),
            ("GET", "/v1/echo%5Cx"),
            ("GET", "/v1/echo/%zz"),
            ("post", "/v1/echo"),
            ("Get", "/v1/echo"),
        ] {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "gw.test")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let resp = h1_exchange(gw.public, req).await;
            assert_eq!(resp.head.status, 400, "{method} {path}");
            let doc: Value = serde_json::from_slice(&resp.body).expect("problem JSON");
            assert_eq!(doc["status"], 400, "{method} {path}: {doc}");
        }
        // Canonical forms still reach the upstream (which answers them, 404 included): a
        // trailing slash, encoded spaces, a query with `%2F`.
        for path in [
            "/v1/echo/",
            "/v1/echo/a%20b",
            "/v1/echo?next=%2Fv1%2F..%2Fjobs",
        ] {
            let req = Request::get(path)
                .header("host", "gw.test")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let resp = h1_exchange(gw.public, req).await;
            assert_ne!(resp.head.status, 400, "{path}");
            assert!(resp.head.headers.contains_key("x-request-id"), "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn removes_hop_by_hop_headers() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;

        let req = Request::get("/v1/echo")
            .header("host", "gw.test")
            .header("connection", "keep-alive, X-Secret-Hop")
            .header("x-secret-hop", "drop me")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers, gzip")
            .header("proxy-authorization", "Basic Zm9vOmJhcg==")
            .header("proxy-connection", "keep-alive")
            .header("x-end-to-end", "kept")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = h1_exchange(gw.public, req).await;
        assert_eq!(resp.head.status, 200);
        let e: Value = serde_json::from_slice(&resp.body).expect("echo JSON");
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
        ] {
            assert!(
                seen(&e, gone).is_empty(),
                "{gone} reached the upstream: {e}"
            );
        }
        // TE is hop-by-hop, but `trailers` is forwarded so the upstream may send trailers.
        assert_eq!(seen(&e, "te"), ["trailers"]);
        assert_eq!(seen(&e, "x-end-to-end"), ["kept"]);
        assert_eq!(seen(&e, "host"), ["gw.test"]);

        let req = Request::get("/v1/echo")
            .header("host", "gw.test")
            .header("te", "gzip")
            .header("connection", "te")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let e: Value =
            serde_json::from_slice(&h1_exchange(gw.public, req).await.body).expect("JSON");
        assert!(seen(&e, "te").is_empty(), "{e}");
        assert!(seen(&e, "connection").is_empty(), "{e}");
    })
    .await;
}

#[tokio::test]
async fn sets_forwarding_headers_replacing_client_values() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let resp = client()
            .get(gw.url("/v1/echo"))
            .header("host", "api.example.test")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-for", "7.7.7.7")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "for=6.6.6.6;proto=https")
            .send()
            .await
            .expect("send");
        let e = echo(resp).await;
        assert_eq!(seen(&e, "host"), ["api.example.test"]);
        assert_eq!(seen(&e, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen(&e, "x-forwarded-proto"), ["http"]);
        assert_eq!(seen(&e, "x-forwarded-host"), ["api.example.test"]);
        assert_eq!(
            seen(&e, "forwarded"),
            ["for=127.0.0.1;proto=http;host=\"api.example.test\""]
        );
    })
    .await;
}

#[tokio::test]
async fn trusted_forwarding_headers_are_extended() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(
            sim.addr,
            "trust_forwarded_headers = true",
            "",
        ))
        .await;
        let resp = client()
            .get(gw.url("/v1/echo"))
            .header("host", "api.example.test")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "lb.example")
            .header("forwarded", "for=6.6.6.6;proto=https")
            .send()
            .await
            .expect("send");
        let e = echo(resp).await;
        assert_eq!(seen(&e, "x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
        assert_eq!(seen(&e, "x-forwarded-proto"), ["https"]);
        assert_eq!(seen(&e, "x-forwarded-host"), ["lb.example"]);
        assert_eq!(
            seen(&e, "forwarded"),
            ["for=6.6.6.6;proto=https, for=127.0.0.1;proto=http;host=\"api.example.test\""]
        );
    })
    .await;
}

#[tokio::test]
async fn trusted_forwarded_for_keeps_every_field_line() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(
            sim.addr,
            "trust_forwarded_headers = true",
            "",
        ))
        .await;
        // A list header split over several field lines is one list (RFC 9110 §5.3).
        let resp = client()
            .get(gw.url("/v1/echo"))
            .header("x-forwarded-for", "1.1.1.1")
            .header("x-forwarded-for", "2.2.2.2")
            .header("forwarded", "for=1.1.1.1")
            .header("forwarded", "for=2.2.2.2")
            .send()
            .await
            .expect("send");
        let e = echo(resp).await;
        assert_eq!(seen(&e, "x-forwarded-for"), ["1.1.1.1, 2.2.2.2, 127.0.0.1"]);
        let ours = format!("for=127.0.0.1;proto=http;host=\"{}\"", gw.public);
        assert_eq!(
            seen(&e, "forwarded"),
            [format!("for=1.1.1.1, for=2.2.2.2, {ours}")]
        );
    })
    .await;
}

#[tokio::test]
async fn request_id_is_assigned_returned_and_forwarded() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let http = client();
        let response_id = |resp: &reqwest::Response| {
            resp.headers()
                .get("x-request-id")
                .expect("X-Request-Id on the response")
                .to_str()
                .expect("ASCII id")
                .to_owned()
        };

        let mut generated = Vec::new();
        for _ in 0..2 {
            let resp = http.get(gw.url("/v1/echo")).send().await.expect("send");
            let id = response_id(&resp);
            let uuid = uuid::Uuid::parse_str(&id).expect("generated id is a UUID");
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(
                seen(&echo(resp).await, "x-request-id"),
                std::slice::from_ref(&id)
            );
            generated.push(id);
        }
        assert_ne!(generated[0], generated[1]);

        let resp = http
            .get(gw.url("/v1/echo"))
            .header("x-request-id", "client-abc-123")
            .send()
            .await
            .expect("send");
        assert_eq!(response_id(&resp), "client-abc-123");
        assert_eq!(seen(&echo(resp).await, "x-request-id"), ["client-abc-123"]);

        for insane in ["two words".to_owned(), "x".repeat(200)] {
            let resp = http
                .get(gw.url("/v1/echo"))
                .header("x-request-id", insane.as_str())
                .send()
                .await
                .expect("send");
            let id = response_id(&resp);
            assert!(
                uuid::Uuid::parse_str(&id).is_ok(),
                "{insane:?} was not replaced: {id}"
            );
            assert_eq!(seen(&echo(resp).await, "x-request-id"), [id]);
        }
    })
    .await;
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let resp = client()
            .post(gw.url("/v1/echo"))
            .header("X-Computegate-Customer", "cus_victim")
            .header("X-Computegate-Tier", "tier3")
            .header("x-computegate-tier", "tier2")
            .header("X-Computegate-Organization", "org_victim")
            .header("X-Computegate-Identity", "eyJhbGciOiJub25lIn0.e30.")
            .header("X-Computegate-Run", "run-42")
            .body("{}")
            .send()
            .await
            .expect("send");
        let e = echo(resp).await;
        for spoofed in [
            "x-computegate-customer",
            "x-computegate-tier",
            "x-computegate-organization",
            "x-computegate-identity",
        ] {
            assert!(
                seen(&e, spoofed).is_empty(),
                "{spoofed} reached the upstream: {e}"
            );
        }
        // The one gateway header a client may set (its run id) passes.
        assert_eq!(seen(&e, "x-computegate-run"), ["run-42"]);
    })
    .await;
}

/// A gateway whose `/v1/jobs` routes are public, in front of `sim`.
async fn jobs_gateway(sim: &Sim) -> Gateway {
    let rest = format!(
        "{}{}",
        upstream("sim", &[sim.addr], ""),
        route("jobs", "/v1/jobs", "sim", "")
    );
    Gateway::start(&config("", &rest)).await
}

/// Submits a job through the gateway and returns its id.
async fn submit_job(http: &reqwest::Client, gw: &Gateway, hours: f64) -> String {
    let spec = json!({"gpu_type": "a100", "gpu_count": 1, "max_duration_hours": hours, "run_id": "proxy-test"});
    let resp = http
        .post(gw.url("/v1/jobs"))
        .json(&spec)
        .send()
        .await
        .expect("submit");
    assert_eq!(resp.status(), 201, "{resp:?}");
    let job: Value = resp.json().await.expect("job JSON");
    job["id"].as_str().expect("job id").to_owned()
}

#[tokio::test]
async fn server_sent_events_arrive_incrementally() {
    within(TEST_TIMEOUT, async {
        // One simulated hour per real second: a 3-hour job logs for about three real seconds.
        let sim = Sim::start_on("127.0.0.1:0", 3600.0).await;
        let gw = jobs_gateway(&sim).await;
        let http = client();
        let id = submit_job(&http, &gw, 3.0).await;

        let resp = http
            .get(gw.url(&format!("/v1/jobs/{id}/logs")))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("logs");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert!(resp.headers().contains_key("x-request-id"));

        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let (mut data_events, mut chunks) = (0, 0);
        let mut end = None;
        while end.is_none() {
            let chunk = stream
                .next()
                .await
                .expect("stream ended before `event: end`")
                .expect("chunk");
            chunks += 1;
            buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
            while let Some(pos) = buf.find("\n\n") {
                let event: String = buf.drain(..pos + 2).collect();
                if event.starts_with("event: end") || event.contains("\nevent: end") {
                    end = event
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .map(str::to_owned);
                } else if event.lines().any(|l| l.starts_with("data: ")) {
                    data_events += 1;
                    if data_events == 1 {
                        // The first event is here while the job still runs: nothing buffered it.
                        let job: Value = http
                            .get(gw.url(&format!("/v1/jobs/{id}")))
                            .send()
                            .await
                            .expect("job")
                            .json()
                            .await
                            .expect("job JSON");
                        let status = job["status"].as_str().unwrap_or_default().to_owned();
                        assert!(["queued", "running"].contains(&status.as_str()), "{job}");
                    }
                }
            }
        }
        assert_eq!(end.as_deref(), Some("succeeded"));
        assert!(data_events >= 3, "{data_events} data events");
        assert!(chunks >= 2, "the whole stream came in {chunks} chunk(s)");
    })
    .await;
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = jobs_gateway(&sim).await;
        let http = client();
        let id = submit_job(&http, &gw, 100.0).await;

        let url = format!("ws://{}/v1/jobs/{id}/attach", gw.public);
        let (mut ws, resp) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        assert!(resp.headers().contains_key("x-request-id"));

        for text in ["nvidia-smi", "tail -f train.log"] {
            ws.send(Message::text(text)).await.expect("send text");
            let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("reply in time")
                .expect("open")
                .expect("frame");
            assert_eq!(reply, Message::text(format!("job {id}: {text}")));
        }
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .expect("send binary");
        let reply = ws.next().await.expect("open").expect("frame");
        assert_eq!(reply, Message::binary(vec![0u8, 1, 2, 255]));
        ws.close(None).await.expect("close");

        // A refused upgrade is an ordinary answer, passed through as is.
        let url = format!("ws://{}/v1/jobs/{}/attach", gw.public, uuid::Uuid::now_v7());
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 404)
            }
            other => panic!("expected the simulator's 404, got {other:?}"),
        }
    })
    .await;
}
