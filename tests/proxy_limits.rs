//! Black-box tests of the gateway's own answers through the real binary: every limit and
//! failure (404, 408, 413, 431, 502, 504) is an `application/problem+json` document with the
//! stable `type` URI of its kind.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use serde_json::Value;

use support::raw::tcp_exchange;
use support::upstream::{TestUpstream, full};
use support::{
    Gateway, Sim, TEST_TIMEOUT, assert_problem_parts, client, closed_port, config, expect_problem,
    route, sim_everything, upstream, within,
};

/// Splits a raw HTTP/1.1 response into status line, headers and body.
fn parse_raw(raw: &[u8]) -> (String, HeaderMap, Vec<u8>) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad header line {line:?}"));
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    (status, headers, body.as_bytes().to_vec())
}

#[tokio::test]
async fn no_route_is_404() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let rest = format!(
            "{}{}{}",
            upstream("sim", &[sim.addr], ""),
            route("ping", "/v1/ping", "sim", "methods = [\"GET\"]"),
            route("gpus", "/v1/gpus", "sim", "host = \"api.example.test\""),
        );
        let gw = Gateway::start(&config("", &rest)).await;
        let http = client();

        let ok = http.get(gw.url("/v1/ping")).send().await.expect("send");
        assert_eq!(ok.status(), 200);
        let ok = http
            .get(gw.url("/v1/gpus"))
            .header("host", "api.example.test")
            .send()
            .await
            .expect("send");
        assert_eq!(ok.status(), 200);

        let misses = [
            http.get(gw.url("/nope")),
            http.get(gw.url("/v1/pingx")),
            http.post(gw.url("/v1/ping")),
            http.get(gw.url("/v1/gpus"))
                .header("host", "other.example.test"),
        ];
        for miss in misses {
            let doc = expect_problem(miss.send().await.expect("send"), 404, "no-route").await;
            assert_eq!(doc["title"], "No route", "{doc}");
        }
    })
    .await;
}

#[tokio::test]
async fn slow_request_head_is_408() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(
            sim.addr,
            "header_read_timeout = \"500ms\"",
            "",
        ))
        .await;
        let raw = tcp_exchange(
            gw.public,
            b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n",
            Duration::from_secs(15),
        )
        .await;
        let (status, headers, body) = parse_raw(&raw);
        assert!(status.starts_with("HTTP/1.1 408"), "{status}");
        let doc: Value = serde_json::from_slice(&body).expect("problem JSON");
        assert_eq!(
            doc["type"], "https://computegate.dev/problems/header-timeout",
            "{doc}"
        );
        // Every answer carries a request id, this one included (checks the rest of the problem too).
        assert_problem_parts(&headers, &doc, 408, "header-timeout");
    })
    .await;
}

#[tokio::test]
async fn idle_keep_alive_connection_closes_quietly() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(
            sim.addr,
            "header_read_timeout = \"500ms\"",
            "",
        ))
        .await;
        // A served request, then silence: the keep-alive connection ends quietly, no 408.
        let raw = tcp_exchange(
            gw.public,
            b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(15),
        )
        .await;
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    })
    .await;
}

#[tokio::test]
async fn silent_new_connection_is_closed() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(
            sim.addr,
            "header_read_timeout = \"500ms\"",
            "",
        ))
        .await;
        // Connects and never sends a byte: it has not sent its head in time either, so it must
        // not hold a connection (and a descriptor) forever.
        let raw = tcp_exchange(gw.public, b"", Duration::from_secs(10)).await;
        assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    })
    .await;
}

/// An upstream that answers 200 with the number of body bytes it read.
async fn counting_upstream() -> TestUpstream {
    TestUpstream::start(|req| {
        Box::pin(async move {
            let n = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            http::Response::new(full(n.to_string()))
        })
    })
    .await
}

#[tokio::test]
async fn body_over_route_limit_is_413() {
    within(TEST_TIMEOUT, async {
        let up = counting_upstream().await;
        let rest = format!(
            "{}{}",
            upstream("up", &[up.addr], ""),
            route("small", "/", "up", "max_body = \"1KiB\"")
        );
        let gw = Gateway::start(&config("", &rest)).await;
        let http = client();
        let chunked = |sizes: &'static [usize]| {
            let chunks = sizes
                .iter()
                .map(|n| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; *n])));
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
        };

        let ok = http
            .post(gw.url("/in"))
            .body(vec![b'x'; 1024])
            .send()
            .await
            .expect("send");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.expect("body"), "1024");
        let ok = http
            .post(gw.url("/in"))
            .body(chunked(&[500, 500]))
            .send()
            .await
            .expect("send");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.expect("body"), "1000");
        let hits = up.hits();

        // Declared too large: refused before the upstream is contacted.
        let resp = http
            .post(gw.url("/in"))
            .body(vec![b'x'; 2048])
            .send()
            .await
            .expect("send");
        let doc = expect_problem(resp, 413, "body-too-large").await;
        assert_eq!(doc["limit_bytes"], 1024, "{doc}");
        assert_eq!(
            up.hits(),
            hits,
            "the upstream saw a request refused on Content-Length"
        );

        // No length: refused once the streamed count passes the limit.
        let resp = http
            .post(gw.url("/in"))
            .body(chunked(&[1000, 1000, 1000]))
            .send()
            .await
            .expect("send");
        let doc = expect_problem(resp, 413, "body-too-large").await;
        assert_eq!(doc["limit_bytes"], 1024, "{doc}");
    })
    .await;
}

#[tokio::test]
async fn header_over_limit_is_431() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "max_header_bytes = \"4KiB\"", "")).await;
        let http = client();
        let ok = http
            .get(gw.url("/v1/ping"))
            .header("x-big", "a".repeat(3 * 1024))
            .send()
            .await
            .expect("send");
        assert_eq!(ok.status(), 200);

        let resp = http
            .get(gw.url("/v1/ping"))
            .header("x-big", "a".repeat(6 * 1024))
            .send()
            .await
            .expect("send");
        let doc = expect_problem(resp, 431, "headers-too-large").await;
        assert_eq!(doc["limit_bytes"], 4096, "{doc}");

        // Far beyond the limit the connection's parser gives up first; still a 431.
        let resp = http
            .get(gw.url("/v1/ping"))
            .header("x-big", "a".repeat(64 * 1024))
            .send()
            .await;
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), 431);
        }
    })
    .await;
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    within(TEST_TIMEOUT, async {
        let dead = closed_port();
        let gw = Gateway::start(&sim_everything(dead, "", "")).await;
        let resp = client().get(gw.url("/v1/ping")).send().await.expect("send");
        let doc = expect_problem(resp, 502, "upstream-unreachable").await;
        // 5xx bodies stay generic: no address leaks to the client.
        let detail = doc["detail"].as_str().unwrap_or_default();
        assert!(!detail.contains(&dead.port().to_string()), "{doc}");
    })
    .await;
}

#[tokio::test]
async fn slow_upstream_is_504() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let rest = format!(
            "{}{}",
            upstream("sim", &[sim.addr], "response_timeout = \"300ms\""),
            route("all", "/", "sim", "")
        );
        let gw = Gateway::start(&config("", &rest)).await;
        let http = client();
        let resp = http
            .get(gw.url("/v1/slow?ms=2000"))
            .send()
            .await
            .expect("send");
        expect_problem(resp, 504, "upstream-timeout").await;
        // Within the timeout the answer is the upstream's.
        let resp = http
            .get(gw.url("/v1/slow?ms=10"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    })
    .await;
}
