//! Black-box tests of the gateway process over time through the real binary: passive health
//! (an ejected upstream address comes back), graceful drain on SIGTERM, and the admin listener
//! (Prometheus text that parses strictly, `/healthz`, `/readyz`).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;

use support::prometheus::{self, Sample};
use support::upstream::{TestUpstream, full};
use support::{
    Gateway, RUNTIME_VAR, Sim, TEST_TIMEOUT, client, closed_port, config, install_crypto, route,
    sim_everything, upstream, within,
};

/// Fetches and strictly parses the admin `/metrics` of `gw`.
async fn metrics(http: &reqwest::Client, gw: &Gateway) -> Vec<Sample> {
    let resp = http
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.expect("metrics text");
    prometheus::parse(&text).unwrap_or_else(|e| panic!("metrics do not parse: {e}\n{text}"))
}

async fn get_status(http: &reqwest::Client, url: &str) -> u16 {
    http.get(url).send().await.expect("send").status().as_u16()
}

#[tokio::test]
async fn ejected_upstream_recovers_after_cool_down() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let dead = closed_port();
        let rest = format!(
            "{}{}",
            upstream("pair", &[sim.addr, dead], "eject_for = \"2s\""),
            route("all", "/", "pair", "")
        );
        let gw = Gateway::start(&config("", &rest)).await;
        let http = client();
        let url = gw.url("/v1/ping");

        // Round-robin sends one of the first two requests to the dead address: one 502.
        let mut first = vec![get_status(&http, &url).await, get_status(&http, &url).await];
        first.sort();
        assert_eq!(first, [200, 502]);
        // It is ejected now: everything goes to the live address.
        for _ in 0..4 {
            assert_eq!(get_status(&http, &url).await, 200);
        }

        // The dead address comes to life; after the cool-down it gets traffic again.
        let listener = TcpListener::bind(dead)
            .await
            .expect("re-bind the dead port");
        let revived = TestUpstream::serve(listener, |_req| {
            Box::pin(async { http::Response::new(full("revived")) })
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while revived.hits() == 0 {
            assert!(
                Instant::now() < deadline,
                "the revived address never got a request"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            let resp = http.get(&url).send().await.expect("send");
            assert_eq!(resp.status(), 200);
        }
        let mut bodies = Vec::new();
        for _ in 0..4 {
            bodies.push(
                http.get(&url)
                    .send()
                    .await
                    .expect("send")
                    .text()
                    .await
                    .expect("body"),
            );
        }
        assert!(bodies.iter().any(|b| b == "revived"), "{bodies:?}");
        assert!(
            bodies.iter().any(|b| b.contains("computegate-simulator")),
            "{bodies:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_then_exits_zero() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        drains_on_sigterm(gw).await;
    })
    .await;
}

#[tokio::test]
async fn work_stealing_drains_an_in_flight_request_on_sigterm() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let env = [(RUNTIME_VAR, "work_stealing")];
        let gw = Gateway::start_with_env(&sim_everything(sim.addr, "", ""), &env).await;
        // One multi-thread runtime: no serving threads of its own.
        let names = thread_names(gw.proc.pid());
        assert!(
            !names.iter().any(|n| n.starts_with("cg-serve-")),
            "serving threads under work_stealing: {names:?}"
        );
        drains_on_sigterm(gw).await;
    })
    .await;
}

#[tokio::test]
async fn thread_per_core_proxies_on_every_thread_and_drains_them_on_sigterm() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let env = [
            (RUNTIME_VAR, "thread_per_core"),
            ("COMPUTEGATE_SERVER__WORKER_THREADS", "2"),
        ];
        let gw = Gateway::start_with_env(&sim_everything(sim.addr, "", ""), &env).await;
        // The second serving thread runs its own runtime and socket. A new thread names itself
        // once it first runs, which on a busy machine can be after the gateway is ready.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let names = thread_names(gw.proc.pid());
            if names.iter().any(|n| n == "cg-serve-1") {
                break;
            }
            assert!(Instant::now() < deadline, "no serving thread: {names:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A fresh connection per request, so the kernel spreads them over both sockets.
        install_crypto();
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        for i in 0..16 {
            let resp = http.get(gw.url("/v1/ping")).send().await.expect("GET");
            assert_eq!(resp.status(), 200, "GET {i}");
            let resp = http
                .post(gw.url("/v1/echo"))
                .body(vec![7u8; 3000 + i])
                .send()
                .await
                .expect("POST");
            assert_eq!(resp.status(), 200, "POST {i}");
            let echo: Value = resp.json().await.expect("echo JSON");
            assert_eq!(echo["method"], "POST", "{echo}");
            assert_eq!(echo["body_bytes"], 3000 + i, "{echo}");
        }
        // Every thread's socket closes on SIGTERM, and the process waits for every thread.
        drains_on_sigterm(gw).await;
    })
    .await;
}

/// The names of `pid`'s threads.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task list");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect()
}

/// Sends SIGTERM to `gw` while a slow request is in flight: the listener closes at once, the
/// request completes, and the process exits 0.
async fn drains_on_sigterm(mut gw: Gateway) {
    let http = client();
    let slow = tokio::spawn({
        let (http, url) = (http.clone(), gw.url("/v1/slow?ms=1500"));
        async move {
            let resp = http.get(url).send().await.expect("slow request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("slow JSON"))
        }
    });
    // Signal once the request is inside the gateway.
    let in_flight = |m: &[Sample]| prometheus::value(m, "computegate_http_in_flight", &[]);
    while in_flight(&metrics(&http, &gw).await) != Some(1.0) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.proc.signal("TERM");

    // The listener closes at once; the process lives on while the request drains.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(gw.public).await {
            Err(e) => {
                // Refused once the listener is gone; a connect that raced the close (queued
                // in the kernel's backlog as the socket shut) is reset instead.
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ),
                    "{e}"
                );
                break;
            }
            Ok(_) => assert!(Instant::now() < deadline, "still accepting after SIGTERM"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !slow.is_finished(),
        "the slow request ended before the listener closed"
    );

    let (status, body) = slow.await.expect("slow task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["slept_ms"], 1500);
    let exit = gw.proc.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit.code(), Some(0), "stderr:\n{}", gw.proc.stderr());
}

#[tokio::test]
async fn metrics_parse_and_count_traffic() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let dead = closed_port();
        let rest = format!(
            "{}{}{}{}",
            upstream("sim", &[sim.addr], ""),
            upstream("dead", &[dead], ""),
            route("ping", "/v1/ping", "sim", ""),
            route("broken", "/broken", "dead", ""),
        );
        let gw = Gateway::start(&config("", &rest)).await;
        let http = client();
        for _ in 0..3 {
            assert_eq!(get_status(&http, &gw.url("/v1/ping")).await, 200);
        }
        assert_eq!(get_status(&http, &gw.url("/nope")).await, 404);
        assert_eq!(get_status(&http, &gw.url("/broken")).await, 502);

        let m = metrics(&http, &gw).await;
        let requests = |route: &str, class: &str| {
            let labels = [("route", route), ("method", "GET"), ("status_class", class)];
            prometheus::value(&m, "computegate_http_requests_total", &labels)
        };
        assert_eq!(requests("ping", "2xx"), Some(3.0));
        assert_eq!(requests("ping", "5xx"), Some(0.0));
        assert_eq!(requests("unmatched", "4xx"), Some(1.0));
        assert_eq!(requests("broken", "5xx"), Some(1.0));
        let errors = |upstream: &str, kind: &str| {
            prometheus::value(
                &m,
                "computegate_upstream_errors_total",
                &[("upstream", upstream), ("kind", kind)],
            )
        };
        assert_eq!(errors("dead", "connect"), Some(1.0));
        // Every pool's error series exist from the start, at 0 until a failure.
        assert_eq!(errors("sim", "connect"), Some(0.0));
        let ping = [("route", "ping")];
        assert_eq!(
            prometheus::value(&m, "computegate_http_request_duration_seconds_count", &ping),
            Some(3.0)
        );
        let inf = [("route", "ping"), ("le", "+Inf")];
        assert_eq!(
            prometheus::value(&m, "computegate_http_request_duration_seconds_bucket", &inf),
            Some(3.0)
        );
        assert_eq!(
            prometheus::value(&m, "computegate_http_in_flight", &[]),
            Some(0.0)
        );
        let version = [("version", env!("CARGO_PKG_VERSION"))];
        assert_eq!(
            prometheus::value(&m, "computegate_build_info", &version),
            Some(1.0)
        );
        // Labels are bounded: no raw path ever becomes a route label.
        assert!(
            m.iter()
                .all(|s| s.labels.get("route").is_none_or(|r| !r.starts_with('/')))
        );

        let health = http
            .get(gw.admin_url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        assert_eq!(
            health.json::<Value>().await.expect("JSON")["status"],
            "alive"
        );
        // One pool has no reachable address: not ready, and the document says which.
        let ready = http
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 503);
        let doc: Value = ready.json().await.expect("JSON");
        assert_eq!(doc["checks"]["upstream:sim"], "ok", "{doc}");
        assert_ne!(doc["checks"]["upstream:dead"], "ok", "{doc}");
    })
    .await;
}

#[tokio::test]
async fn readiness_follows_upstream_reachability() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = Gateway::start(&sim_everything(sim.addr, "", "")).await;
        let http = client();
        let ready = http
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200);
        assert_eq!(
            ready.json::<Value>().await.expect("JSON")["status"],
            "ready"
        );

        drop(sim);
        let ready = http
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 503);
        assert_eq!(
            ready.json::<Value>().await.expect("JSON")["status"],
            "not_ready"
        );
        assert_eq!(get_status(&http, &gw.admin_url("/healthz")).await, 200);
    })
    .await;
}

#[test]
fn metrics_parser_is_strict() {
    let good = "# HELP x_total Things.\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"\"} 3\n\
                # TYPE g gauge\ng 0\n# EOF\n";
    let samples = prometheus::parse(good).expect("valid exposition");
    assert_eq!(
        prometheus::value(&samples, "x_total", &[("a", "1"), ("b", "q\"")]),
        Some(3.0)
    );
    for bad in [
        "# TYPE g gauge\ng 0\n",                         // no EOF
        "# TYPE g gauge\ng\n# EOF\n",                    // no value
        "# TYPE g gauge\ng{a=1} 0\n# EOF\n",             // unquoted label
        "# TYPE g gauge\ng{a=\"1\"  0\n# EOF\n",         // unterminated labels
        "g 0\n# EOF\n",                                  // undeclared family
        "# TYPE x counter\nx 1\n# EOF\n",                // counter sample without _total
        "# TYPE g gauge\ng zero\n# EOF\n",               // bad value
        "# TYPE g gauge\ng{a=\"1\",a=\"2\"} 0\n# EOF\n", // repeated label
    ] {
        assert!(prometheus::parse(bad).is_err(), "accepted {bad:?}");
    }
}
