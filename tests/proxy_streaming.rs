//! Black-box streaming tests through the real binary: 256 MiB up and down in bounded memory,
//! chunked bodies with trailers in both directions, and `Expect: 100-continue`.

mod support;

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::raw::h1_exchange;
use support::upstream::{TestUpstream, UpFuture};
use support::{
    Gateway, Sim, TEST_TIMEOUT, client, config, route, sim_everything, upstream, within,
};

/// Size of each transfer.
const TRANSFER: u64 = 256 << 20;
/// Peak resident memory the gateway may reach; buffering one whole transfer would exceed it.
const MAX_GATEWAY_RSS: u64 = 120 << 20;
/// SHA-256 of `TRANSFER` bytes of [`pattern_byte`] (`python3 -c` over `bytes(i % 251 …)`).
const TRANSFER_SHA256: &str = "e74b733aab68cac88359c276fa9b22abd29f1cbe86597829185009b8035c1635";
/// Chunk of generated upload bodies.
const CHUNK: usize = 64 << 10;
/// Period of the pattern (the simulator's synthetic downloads use the same one).
const PERIOD: usize = 251;

/// One chunk plus one period of the pattern, so any chunk is a slice of it.
static PATTERN: LazyLock<Bytes> = LazyLock::new(|| {
    (0..CHUNK + PERIOD)
        .map(|i| (i % PERIOD) as u8)
        .collect::<Vec<u8>>()
        .into()
});

/// `len` pattern bytes generated on the fly, in `CHUNK`-sized pieces.
fn pattern_stream(len: u64) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(0u64, move |offset| async move {
        (offset < len).then(|| {
            let n = (len - offset).min(CHUNK as u64) as usize;
            let start = (offset % PERIOD as u64) as usize;
            (Ok(PATTERN.slice(start..start + n)), offset + n as u64)
        })
    })
}

/// Checks that `chunk`, found at `offset` of a download, is the pattern.
fn check_pattern(chunk: &[u8], offset: u64) {
    let mut at = 0;
    while at < chunk.len() {
        let n = (chunk.len() - at).min(CHUNK);
        let start = ((offset + at as u64) % PERIOD as u64) as usize;
        assert!(
            chunk[at..at + n] == PATTERN[start..start + n],
            "download corrupt near byte {}",
            offset + at as u64
        );
        at += n;
    }
}

#[tokio::test]
async fn large_upload_and_download_stream_in_bounded_memory() {
    within(Duration::from_secs(300), async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "max_body = \"1GiB\"")).await;
        let http = client();

        let resp = http
            .post(gw.url("/v1/datasets"))
            .header("content-length", TRANSFER.to_string())
            .body(reqwest::Body::wrap_stream(pattern_stream(TRANSFER)))
            .send()
            .await
            .expect("upload");
        assert_eq!(resp.status(), 200);
        let receipt: Value = resp.json().await.expect("receipt JSON");
        assert_eq!(
            receipt,
            json!({"bytes": TRANSFER, "sha256": TRANSFER_SHA256})
        );

        let resp = http
            .get(gw.url(&format!("/v1/datasets/synthetic?bytes={TRANSFER}")))
            .send()
            .await
            .expect("download");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-length"],
            TRANSFER.to_string().as_str()
        );
        let mut body = resp.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("download chunk");
            check_pattern(&chunk, received);
            received += chunk.len() as u64;
        }
        assert_eq!(received, TRANSFER);

        let peak = gw.proc.peak_rss_bytes();
        println!(
            "gateway VmHWM after 2 x {} MiB: {} KiB",
            TRANSFER >> 20,
            peak >> 10
        );
        assert!(
            peak < MAX_GATEWAY_RSS,
            "gateway peak RSS {peak} bytes: bodies were buffered"
        );
    })
    .await;
}

/// An upstream that reports what it received (including request trailers) in a chunked body
/// that ends with a trailer, and sends hop-by-hop headers the gateway must remove.
fn trailer_upstream(req: Request<hyper::body::Incoming>) -> UpFuture {
    Box::pin(async move {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_owned())
        };
        let (te, te_chunked, declared) =
            (header("te"), header("transfer-encoding"), header("trailer"));
        let collected = req.into_body().collect().await.expect("request body");
        let trailers: serde_json::Map<String, Value> = collected
            .trailers()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                    .collect()
            })
            .unwrap_or_default();
        let report = json!({
            "te": te, "transfer_encoding": te_chunked, "trailer": declared,
            "body": String::from_utf8_lossy(&collected.to_bytes()), "trailers": trailers,
        });
        let mut end = HeaderMap::new();
        end.insert("x-resp-checksum", HeaderValue::from_static("c0ffee"));
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from(report.to_string()))),
            Ok(Frame::data(Bytes::from_static(b"\n--end--"))),
            Ok(Frame::trailers(end)),
        ];
        Response::builder()
            .header("trailer", "x-resp-checksum")
            .header("connection", "x-resp-hop")
            .header("x-resp-hop", "secret")
            .header("keep-alive", "timeout=1")
            .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                frames,
            ))))
            .expect("response")
    })
}

#[tokio::test]
async fn chunked_bodies_and_trailers_pass_both_ways() {
    within(TEST_TIMEOUT, async {
        let up = TestUpstream::start(trailer_upstream).await;
        let rest = format!(
            "{}{}",
            upstream("custom", &[up.addr], ""),
            route("custom", "/", "custom", "")
        );
        let gw = Gateway::start(&config("", &rest)).await;

        let mut end = HeaderMap::new();
        end.insert("x-req-checksum", HeaderValue::from_static("abc123"));
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"chunked world"))),
            Ok(Frame::trailers(end)),
        ];
        let req = Request::post("/upload")
            .header("host", "gw.test")
            .header("te", "trailers")
            .header("trailer", "x-req-checksum")
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .expect("request");
        let resp = h1_exchange(gw.public, req).await;

        assert_eq!(resp.head.status, 200);
        let headers = &resp.head.headers;
        assert_eq!(headers["trailer"], "x-resp-checksum");
        assert_eq!(headers["transfer-encoding"], "chunked");
        for hop in ["x-resp-hop", "keep-alive"] {
            assert!(
                !headers.contains_key(hop),
                "{hop} reached the client: {headers:?}"
            );
        }
        let text = std::str::from_utf8(&resp.body).expect("UTF-8 body");
        let report: Value =
            serde_json::from_str(text.strip_suffix("\n--end--").expect("both chunks"))
                .expect("report");
        assert_eq!(report["te"], "trailers", "{report}");
        assert_eq!(report["transfer_encoding"], "chunked", "{report}");
        assert_eq!(report["trailer"], "x-req-checksum", "{report}");
        assert_eq!(report["body"], "hello chunked world", "{report}");
        assert_eq!(
            report["trailers"],
            json!({"x-req-checksum": "abc123"}),
            "{report}"
        );

        let trailers = resp.trailers.expect("response trailers reached the client");
        assert_eq!(
            trailers.get("x-resp-checksum").map(|v| v.as_bytes()),
            Some(&b"c0ffee"[..])
        );
        assert_eq!(up.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let mut conn = tokio::net::TcpStream::connect(gw.public)
            .await
            .expect("connect");
        conn.write_all(
            b"POST /v1/echo HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write head");
        let mut interim = [0u8; 25];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut interim))
            .await
            .expect("100 Continue in time")
            .expect("read");
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        conn.write_all(b"12345").await.expect("write body");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.expect("read answer");
        let rest = String::from_utf8_lossy(&rest);
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
        let echo: Value =
            serde_json::from_str(rest.split("\r\n\r\n").nth(1).expect("body")).expect("echo JSON");
        assert_eq!(echo["body_bytes"], 5, "{echo}");
        // The gateway answered the expectation itself; the upstream sees a plain request.
        assert!(echo["headers"].get("expect").is_none(), "{echo}");
    })
    .await;
}
