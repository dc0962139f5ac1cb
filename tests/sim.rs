//! Black-box tests of the compute simulator: each starts `computegate::sim::serve` on
//! `127.0.0.1:0` and talks to it over real sockets with plain HTTP and WebSocket clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use computegate::sim::{SimConfig, serve};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, Method, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Generous bound for anything that should happen quickly, so a loaded machine does not flake.
const PATIENCE: Duration = Duration::from_secs(20);

/// A simulator running in this process.
struct Sim {
    addr: SocketAddr,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sim {
    async fn start(speedup: f64) -> Sim {
        // reqwest is built without a default crypto provider; the project uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(
            listener,
            SimConfig {
                speedup,
                usage: None,
            },
            shutdown,
        ));
        Sim {
            addr,
            client: Client::new(),
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    async fn submit(&self, job: Value) -> reqwest::Response {
        let url = self.url("/v1/jobs");
        self.client.post(url).json(&job).send().await.expect("POST")
    }

    /// Submits a job that must be accepted and returns its JSON.
    async fn submit_ok(&self, job: Value) -> Value {
        let response = self.submit(job).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("job json")
    }

    async fn free(&self, gpu_type: &str) -> u64 {
        let catalog: Value = self.get("/v1/gpus").await.json().await.expect("json");
        let entry = catalog
            .as_array()
            .expect("array")
            .iter()
            .find(|e| e["type"] == gpu_type)
            .expect("type in catalog");
        entry["free"].as_u64().expect("free")
    }

    /// Triggers graceful shutdown and waits for `serve` to return.
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(PATIENCE, &mut self.task).await;
        result
            .expect("drained in time")
            .expect("task")
            .expect("serve ok");
    }
}

fn job(gpu_type: &str, gpu_count: u32, hours: f64) -> Value {
    json!({"gpu_type": gpu_type, "gpu_count": gpu_count, "max_duration_hours": hours, "run_id": "run-1"})
}

/// Asserts an RFC 9457 problem and returns its body.
async fn problem(response: reqwest::Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    let ctype = response.headers()[header::CONTENT_TYPE].clone();
    assert_eq!(ctype, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(
        body["type"],
        format!("https://computegate.dev/problems/{kind}")
    );
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

#[tokio::test]
async fn ping_and_catalog() {
    let sim = Sim::start(3600.0).await;
    let ping = sim.get("/v1/ping").await;
    assert_eq!(ping.status(), StatusCode::OK);
    assert_eq!(ping.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        ping.text().await.expect("body"),
        r#"{"status":"ok","service":"computegate-simulator"}"#
    );

    let catalog: Value = sim.get("/v1/gpus").await.json().await.expect("json");
    let h100 = catalog
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["type"] == "h100")
        .expect("h100")
        .clone();
    assert_eq!(h100["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(h100["memory_gib"], 80);
    assert_eq!(h100["free"], h100["total"]);
    for t in ["a100", "h200", "b200", "tpu-v5p"] {
        assert!(
            catalog
                .as_array()
                .expect("array")
                .iter()
                .any(|e| e["type"] == t)
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn job_runs_to_completion_on_the_simulated_clock() {
    // 100 simulated hours per real second: a 1-hour job takes ~10 ms.
    let sim = Sim::start(360_000.0).await;
    let mut spec = job("h100", 8, 1.0);
    spec["parent_run_id"] = json!("run-0");
    spec["model"] = json!({"parameters": 7e9});
    spec["dataset"] = json!({"tokens": 1e12, "kind": "text"});
    let response = sim.submit(spec).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(created["gpu_type"], "h100");
    assert_eq!(created["gpu_count"], 8);
    assert_eq!(created["run_id"], "run-1");
    assert_eq!(created["parent_run_id"], "run-0");
    assert_eq!(created["model"]["parameters"], 7e9);
    assert_eq!(created["dataset"]["kind"], "text");
    assert!(["queued", "running", "succeeded"].contains(&created["status"].as_str().expect("s")));
    assert!(created["created_at"].is_string());

    let deadline = Instant::now() + PATIENCE;
    let done = loop {
        let job: Value = sim.get(&location).await.json().await.expect("json");
        if job["status"] == "succeeded" {
            break job;
        }
        assert!(Instant::now() < deadline, "job never finished: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["accelerator_seconds"], 8.0 * 3600.0);
    let parse = |v: &Value| {
        let s = v.as_str().expect("timestamp");
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339")
    };
    let ran = parse(&done["finished_at"]) - parse(&done["started_at"]);
    assert!((ran.as_seconds_f64() - 3600.0).abs() < 0.01, "{ran}");
    assert_eq!(sim.free("h100").await, 512);

    let list: Value = sim.get("/v1/jobs").await.json().await.expect("json");
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn running_jobs_hold_gpus_and_cancel_frees_them() {
    let sim = Sim::start(3600.0).await;
    let created = sim.submit_ok(job("b200", 128, 100.0)).await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(sim.free("b200").await, 0);

    let refused = sim.submit(job("b200", 1, 1.0)).await;
    let body = problem(refused, StatusCode::CONFLICT, "sim-insufficient-capacity").await;
    assert_eq!(body["field"], "gpu_count");

    let url = sim.url(&format!("/v1/jobs/{id}"));
    let cancelled = sim.client.delete(&url).send().await.expect("DELETE");
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.expect("json");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_string());
    assert_eq!(sim.free("b200").await, 128);

    let again = sim.client.delete(&url).send().await.expect("DELETE");
    problem(again, StatusCode::CONFLICT, "sim-job-ended").await;
    let unknown = sim
        .get("/v1/jobs/00000000-0000-0000-0000-000000000000")
        .await;
    problem(unknown, StatusCode::NOT_FOUND, "sim-job-not-found").await;
    problem(
        sim.get("/v1/jobs/not-a-uuid").await,
        StatusCode::NOT_FOUND,
        "sim-job-not-found",
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn logs_stream_in_chunks_as_the_job_runs() {
    // One simulated hour per real second: a line every ~83 ms, a 1-hour job in ~1 s.
    let sim = Sim::start(3600.0).await;
    let id = sim.submit_ok(job("a100", 4, 1.0)).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = sim.get(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let started = Instant::now();
    let mut chunks = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunks.push((started.elapsed(), chunk.expect("chunk")));
    }
    let text: String = chunks
        .iter()
        .map(|(_, c)| String::from_utf8_lossy(c))
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 12 + 1, "{text}");
    assert!(lines[0].starts_with("[sim t=0s] job "), "{text}");
    assert!(lines[1].starts_with("[sim t=30s] step 0 loss "), "{text}");
    assert!(lines[13].contains("job succeeded"), "{text}");
    assert!(
        chunks.len() >= 3,
        "expected a stream of chunks, got {}",
        chunks.len()
    );
    let spread = chunks[chunks.len() - 1].0 - chunks[0].0;
    assert!(
        spread >= Duration::from_millis(500),
        "lines arrived at once: {spread:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn logs_as_server_sent_events() {
    let sim = Sim::start(360_000.0).await;
    let id = sim.submit_ok(job("a100", 1, 1.0)).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = sim
        .client
        .get(sim.url(&format!("/v1/jobs/{id}/logs")))
        .header(header::ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let body = response.text().await.expect("body");
    assert!(body.starts_with("data: [sim t=0s] job "), "{body}");
    assert_eq!(body.matches("data: [sim ").count(), 14, "{body}");
    assert!(body.ends_with("event: end\ndata: succeeded\n\n"), "{body}");
    sim.shutdown().await;
}

#[tokio::test]
async fn cancelling_ends_a_followed_log() {
    let sim = Sim::start(3600.0).await;
    let id = sim.submit_ok(job("h200", 8, 10.0)).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut body = sim.get(&format!("/v1/jobs/{id}/logs")).await.bytes_stream();
    let first = body.next().await.expect("first chunk").expect("ok");
    assert!(String::from_utf8_lossy(&first).contains("queued"));
    let url = sim.url(&format!("/v1/jobs/{id}"));
    assert!(
        sim.client
            .delete(url)
            .send()
            .await
            .expect("DELETE")
            .status()
            .is_success()
    );
    let mut rest = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            rest.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("log ended");
    assert!(
        rest.trim_end().ends_with("job cancelled before start")
            || rest.contains("job cancelled at step"),
        "{rest}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_log_streams_and_drains_slow_requests() {
    let sim = Sim::start(1.0).await;
    let id = sim.submit_ok(job("h100", 1, 1.0)).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut logs = sim.get(&format!("/v1/jobs/{id}/logs")).await.bytes_stream();
    logs.next().await.expect("first chunk").expect("ok");
    let slow = tokio::spawn(sim.client.get(sim.url("/v1/slow?ms=1000")).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    sim.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "did not wait for /v1/slow"
    );
    let slow = slow.await.expect("task").expect("slow answered");
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(
        slow.json::<Value>().await.expect("json"),
        json!({"slept_ms": 1000})
    );
    let mut rest = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("[sim] log ended: shutdown"), "{rest}");
}

#[tokio::test]
async fn websocket_console_echoes_with_the_job_prefix() {
    let sim = Sim::start(3600.0).await;
    let id = sim.submit_ok(job("h100", 1, 1.0)).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let url = format!("ws://{}/v1/jobs/{id}/attach", sim.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["nvidia-smi", "tail -f train.log"] {
        ws.send(Message::text(text)).await.expect("send");
        let reply = ws.next().await.expect("reply").expect("frame");
        assert_eq!(reply, Message::text(format!("job {id}: {text}")));
    }
    ws.close(None).await.expect("close");

    let missing = format!("ws://{}/v1/jobs/{}/attach", sim.addr, uuid_nil());
    let err = tokio_tungstenite::connect_async(missing)
        .await
        .expect_err("404");
    assert!(err.to_string().contains("404"), "{err}");
    let plain = sim.get(&format!("/v1/jobs/{id}/attach")).await;
    assert!(plain.status().is_client_error());
    assert_eq!(
        plain.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    sim.shutdown().await;
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

#[tokio::test]
async fn dataset_upload_is_counted_and_digested() {
    let sim = Sim::start(3600.0).await;
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 128; // 8 MiB
    let chunk = |i: usize| vec![(i % 256) as u8; CHUNK];
    let mut expected = Sha256::new();
    for i in 0..CHUNKS {
        expected.update(chunk(i));
    }
    let stream =
        futures_util::stream::iter((0..CHUNKS).map(move |i| Ok::<_, std::io::Error>(chunk(i))));
    let response = sim
        .client
        .post(sim.url("/v1/datasets"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    let receipt: Value = response.json().await.expect("json");
    assert_eq!(receipt["bytes"], CHUNK * CHUNKS);
    assert_eq!(receipt["sha256"], hex::encode(expected.finalize()));
    sim.shutdown().await;
}

#[tokio::test]
async fn synthetic_download_has_the_requested_length() {
    let sim = Sim::start(3600.0).await;
    let n: u64 = 10_000_003;
    let response = sim.get(&format!("/v1/datasets/synthetic?bytes={n}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_LENGTH],
        n.to_string().as_str()
    );
    let mut body = response.bytes_stream();
    let mut seen: u64 = 0;
    while let Some(chunk) = body.next().await {
        for byte in chunk.expect("chunk") {
            assert_eq!(byte, (seen % 251) as u8, "byte {seen}");
            seen += 1;
        }
    }
    assert_eq!(seen, n);

    let empty = sim.get("/v1/datasets/synthetic?bytes=0").await;
    assert_eq!(empty.headers()[header::CONTENT_LENGTH], "0");
    let too_big = sim
        .get(&format!(
            "/v1/datasets/synthetic?bytes={}",
            (16u64 << 30) + 1
        ))
        .await;
    problem(too_big, StatusCode::BAD_REQUEST, "sim-invalid-query").await;
    let missing = sim.get("/v1/datasets/synthetic").await;
    problem(missing, StatusCode::BAD_REQUEST, "sim-invalid-query").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn echo_reflects_method_path_query_headers_and_body() {
    let sim = Sim::start(3600.0).await;
    let response = sim
        .client
        .request(Method::PATCH, sim.url("/v1/echo/deep/path?a=1&a=2&b=x%20y"))
        .header("x-multi", "one")
        .header("x-multi", "two")
        .header("x-request-id", "req-42")
        .body(vec![7u8; 1234])
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["path"], "/v1/echo/deep/path");
    assert_eq!(echo["query"], "a=1&a=2&b=x%20y");
    assert_eq!(echo["headers"]["x-multi"], json!(["one", "two"]));
    assert_eq!(echo["headers"]["x-request-id"], json!(["req-42"]));
    assert_eq!(echo["headers"]["content-length"], json!(["1234"]));
    assert_eq!(echo["headers"]["host"], json!([sim.addr.to_string()]));
    assert_eq!(echo["body_bytes"], 1234);

    let bare: Value = sim.get("/v1/echo").await.json().await.expect("json");
    assert_eq!(
        (bare["method"].as_str(), bare["query"].is_null()),
        (Some("GET"), true)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_get_problem_documents() {
    let sim = Sim::start(3600.0).await;
    problem(
        sim.get("/v2/nothing").await,
        StatusCode::NOT_FOUND,
        "sim-not-found",
    )
    .await;

    let malformed = sim
        .client
        .post(sim.url("/v1/jobs"))
        .body("{nope")
        .send()
        .await
        .expect("POST");
    problem(malformed, StatusCode::BAD_REQUEST, "sim-malformed-json").await;

    let zero = sim.submit(job("h100", 0, 1.0)).await;
    let body = problem(zero, StatusCode::UNPROCESSABLE_ENTITY, "sim-invalid-job").await;
    assert_eq!(body["field"], "gpu_count");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("gpu_count")
    );

    let unknown = sim.submit(job("v100", 1, 1.0)).await;
    let body = problem(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sim-unknown-gpu-type",
    )
    .await;
    assert_eq!(body["field"], "gpu_type");

    let mut no_run = job("h100", 1, 1.0);
    no_run.as_object_mut().expect("object").remove("run_id");
    let body = problem(
        sim.submit(no_run).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sim-invalid-job",
    )
    .await;
    assert_eq!(body["field"], "run_id");

    let wrong_method = sim
        .client
        .delete(sim.url("/v1/gpus"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(wrong_method.headers()[header::ALLOW], "GET,HEAD");
    problem(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "sim-method-not-allowed",
    )
    .await;
    let bad_ms = sim.get("/v1/slow?ms=soon").await;
    problem(bad_ms, StatusCode::BAD_REQUEST, "sim-invalid-query").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn serves_http2_with_prior_knowledge() {
    let sim = Sim::start(3600.0).await;
    let client = Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = client
        .get(sim.url("/v1/ping"))
        .send()
        .await
        .expect("h2 GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = client
        .get(sim.url("/v1/echo"))
        .send()
        .await
        .expect("h2")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["version"], "HTTP/2");
    sim.shutdown().await;
}
