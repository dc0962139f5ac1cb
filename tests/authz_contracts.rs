//! External-authorization mode through the real binary: the `[authz]` listener answered with a
//! plain HTTP client building exactly the asks of Envoy's `ext_authz` HTTP service (original
//! method, path after the prefix, `Host`, allowed headers, body with `with_request_body`),
//! nginx `auth_request` (`X-Original-Method` / `X-Original-URI`) and Traefik `ForwardAuth`
//! (`X-Forwarded-Method` / `-Uri` / `-Host` / `-Proto`).
//!
//! Each refusal is compared with the same request sent through the proxy door: the same status
//! and problem document (for nginx: 401/403 carrying the real status and document in headers).
//! An admitted job is metered and settled by the upstream's usage events as in proxy mode.
//! The real nginx in front of the simulator is `tests/authz_nginx.rs`.

mod support;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use support::metering::{Backend, Meter, job, num, policy, tiers, usage_event};
use support::{Gateway, TEST_TIMEOUT, assert_problem_parts, expect_problem, within};

/// `[authz]` on a free port, asked from this host.
const AUTHZ: &str =
    "\n[authz]\naddr = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]\n";

/// The host the edge proxy was asked for (routes match any host).
const HOST: &str = "api.example.test";

/// The three contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxy {
    Envoy,
    Nginx,
    Traefik,
}

const ALL: [Proxy; 3] = [Proxy::Envoy, Proxy::Nginx, Proxy::Traefik];

/// One request, as the client sent it to the edge proxy.
struct Original<'a> {
    method: &'a str,
    uri: &'a str,
    bearer: Option<&'a str>,
    body: Option<String>,
}

async fn start(policy: Option<&str>) -> Meter {
    Meter::start_edited(Backend::Sqlite, policy, |c| c + AUTHZ).await
}

fn authz_url(m: &Meter, path: &str) -> String {
    let addr = m.gw.authz.expect("the banner names the authz listener");
    format!("http://{addr}{path}")
}

/// The ask `proxy` sends about `original`.
async fn ask(m: &Meter, proxy: Proxy, original: &Original<'_>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(original.method.as_bytes()).expect("method");
    let mut req = match proxy {
        // ext_authz HTTP service: same method, path_prefix + original path, Host kept, the
        // always-allowed headers (Authorization, Content-Length) and those configured
        // (X-Forwarded-For, X-Request-Id), the buffered body.
        Proxy::Envoy => m
            .http
            .request(method, authz_url(m, &format!("/envoy{}", original.uri)))
            .header("host", HOST)
            .header("x-request-id", "envoy-generated-1"),
        Proxy::Nginx => m
            .http
            .get(authz_url(m, "/nginx"))
            .header("host", HOST)
            .header("x-original-method", original.method)
            .header("x-original-uri", original.uri),
        Proxy::Traefik => m
            .http
            .get(authz_url(m, "/traefik"))
            .header("x-forwarded-method", original.method)
            .header("x-forwarded-uri", original.uri)
            .header("x-forwarded-host", HOST)
            .header("x-forwarded-proto", "https"),
    };
    req = req.header("x-forwarded-for", "203.0.113.9");
    if let Some(bearer) = original.bearer {
        req = req.header("authorization", format!("Bearer {bearer}"));
    }
    if let (Proxy::Envoy, Some(body)) = (proxy, &original.body) {
        req = req.body(body.clone());
    }
    req.send().await.expect("authorization request")
}

/// The same request through the proxy door.
async fn through_proxy(m: &Meter, original: &Original<'_>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(original.method.as_bytes()).expect("method");
    let mut req = m.http.request(method, m.gw.url(original.uri));
    if let Some(bearer) = original.bearer {
        req = req.header("authorization", format!("Bearer {bearer}"));
    }
    if let Some(body) = &original.body {
        req = req.body(body.clone());
    }
    req.send().await.expect("proxied request")
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Asserts `resp` is `proxy`'s form of the refusal `status`/`slug`, and returns its document.
async fn expect_refusal(resp: reqwest::Response, proxy: Proxy, status: u16, slug: &str) -> Value {
    if proxy != Proxy::Nginx {
        return expect_problem(resp, status, slug).await;
    }
    // nginx passes 401 and 403 only: the real status and document ride in headers.
    let carried = if status == 401 { 401 } else { 403 };
    assert_eq!(resp.status().as_u16(), carried, "nginx answer {resp:?}");
    let headers = resp.headers().clone();
    assert_eq!(
        header(&headers, "x-computegate-status"),
        Some(status.to_string().as_str()),
        "{headers:?}"
    );
    let doc: Value = serde_json::from_str(header(&headers, "x-computegate-problem").unwrap_or(""))
        .expect("the problem document in X-Computegate-Problem");
    let body: Value = resp.json().await.expect("the body too");
    assert_eq!(body, doc, "header and body carry one document");
    assert_eq!(doc["status"], status, "{doc}");
    assert!(doc["type"].as_str().unwrap_or("").ends_with(slug), "{doc}");
    doc
}

/// Asks `original` through every contract and the proxy door: the same refusal everywhere.
async fn refused_alike(m: &Meter, original: &Original<'_>, status: u16, slug: &str) {
    let resp = through_proxy(m, original).await;
    let headers = resp.headers().clone();
    let proxied: Value = resp.json().await.expect("proxy problem");
    assert_problem_parts(&headers, &proxied, status, slug);
    for proxy in ALL {
        let resp = ask(m, proxy, original).await;
        assert!(resp.headers().contains_key("x-request-id"), "{resp:?}");
        let doc = expect_refusal(resp, proxy, status, slug).await;
        assert_eq!(doc, proxied, "{proxy:?}: same document as the proxy door");
    }
}

#[tokio::test]
async fn each_contract_allows_with_the_identity_and_refuses_like_the_proxy() {
    within(TEST_TIMEOUT, async {
        let m = start(None).await;
        let c = m.customer().await;
        let read = Original {
            method: "GET",
            uri: "/v1/echo/things?page=2",
            bearer: Some(&c.access),
            body: None,
        };
        for proxy in ALL {
            let resp = ask(&m, proxy, &read).await;
            assert_eq!(resp.status(), 200, "{proxy:?}: {resp:?}");
            let h = resp.headers();
            assert_eq!(header(h, "x-computegate-customer"), Some(c.id.as_str()));
            assert_eq!(header(h, "x-computegate-tier"), Some("unverified"));
            assert!(h.contains_key("ratelimit-remaining"), "{proxy:?}: {h:?}");
            assert!(!h.contains_key("x-computegate-job"), "not a job: {h:?}");
            let remove = header(h, "x-envoy-auth-headers-to-remove");
            if proxy == Proxy::Envoy {
                assert_eq!(
                    header(h, "x-request-id"),
                    Some("envoy-generated-1"),
                    "Envoy's request id is the one the upstream gets"
                );
                let remove = remove
                    .expect("Envoy strips what it does not set")
                    .to_owned();
                for name in [
                    "authorization",
                    "x-computegate-organization",
                    "x-computegate-job",
                ] {
                    assert!(
                        remove.split(',').any(|n| n.trim() == name),
                        "{name} in {remove}"
                    );
                }
                assert!(!remove.contains("x-computegate-customer"), "{remove}");
            } else {
                assert!(remove.is_none(), "{proxy:?}: an Envoy-only header");
                assert!(h.contains_key("x-request-id"), "{proxy:?}: {h:?}");
            }
        }
        // Unknown credential: 401 with its challenge, like the proxy door.
        let unknown = Original {
            bearer: Some("cg_live_unknown0000000000000000"),
            ..read
        };
        refused_alike(&m, &unknown, 401, "unauthenticated").await;
        let resp = ask(&m, Proxy::Nginx, &unknown).await;
        assert!(resp.headers().contains_key("www-authenticate"), "{resp:?}");
        // No credential at all.
        let anonymous = Original {
            bearer: None,
            ..unknown
        };
        refused_alike(&m, &anonymous, 401, "unauthenticated").await;
        // The tier may only read: a write is refused with the tier fields.
        let write = Original {
            method: "DELETE",
            uri: "/v1/echo/things/1",
            bearer: Some(&c.access),
            body: None,
        };
        refused_alike(&m, &write, 403, "tier-denied").await;
        // No route.
        let nowhere = Original {
            method: "GET",
            uri: "/elsewhere",
            bearer: Some(&c.access),
            body: None,
        };
        refused_alike(&m, &nowhere, 404, "no-route").await;
        // Computegate's own pages are not an upstream's: an edge proxy sends them to the
        // public listener, and an ask about them is refused.
        let own = Original {
            method: "GET",
            uri: "/computegate/v1/me",
            bearer: Some(&c.access),
            body: None,
        };
        expect_problem(ask(&m, Proxy::Envoy, &own).await, 404, "no-route").await;

        // A malformed ask names what is missing, shaped for nginx like any refusal (a bare 400
        // would reach the client as nginx's own 500).
        let resp = m
            .http
            .get(authz_url(&m, "/nginx"))
            .header("x-original-method", "GET")
            .send()
            .await
            .expect("send");
        let doc = expect_refusal(resp, Proxy::Nginx, 400, "authz-request-incomplete").await;
        assert!(
            doc["detail"]
                .as_str()
                .unwrap_or("")
                .contains("x-original-uri"),
            "{doc}"
        );
        // The listener answers only the contract paths.
        let resp = m
            .http
            .get(authz_url(&m, "/v1/echo"))
            .send()
            .await
            .expect("send");
        expect_problem(resp, 404, "no-route").await;
    })
    .await;
}

#[tokio::test]
async fn the_rate_limit_is_shared_by_both_doors_and_refused_with_429() {
    within(TEST_TIMEOUT, async {
        let caps = "rate_limit = { requests_per_second = 0.1, burst = 4 }";
        let text = policy("authz-rate.1", &tiers(&[("unverified", caps)]), "");
        let m = start(Some(&text)).await;
        let c = m.customer().await;
        let read = Original {
            method: "GET",
            uri: "/v1/echo/rate",
            bearer: Some(&c.access),
            body: None,
        };
        // One budget for the customer whichever door counts it.
        assert_eq!(through_proxy(&m, &read).await.status(), 200);
        for proxy in ALL {
            let resp = ask(&m, proxy, &read).await;
            assert_eq!(resp.status(), 200, "{proxy:?} within the burst: {resp:?}");
            assert_eq!(header(resp.headers(), "ratelimit-limit"), Some("4"));
        }
        for proxy in ALL {
            let resp = ask(&m, proxy, &read).await;
            let headers = resp.headers().clone();
            expect_refusal(resp, proxy, 429, "rate-limited").await;
            assert!(
                headers.contains_key("retry-after"),
                "{proxy:?}: {headers:?}"
            );
        }
        let resp = through_proxy(&m, &read).await;
        expect_problem(resp, 429, "rate-limited").await;
    })
    .await;
}

#[tokio::test]
async fn a_job_is_admitted_with_its_body_metered_and_settled_and_refused_without_it() {
    within(TEST_TIMEOUT, async {
        let m = start(None).await;
        let staff = m.staff("auditor").await;
        let c = m.customer().await;
        let body = job("h100", 1, 1.0, "edge-run").to_string();
        let submit = Original {
            method: "POST",
            uri: "/v1/jobs",
            bearer: Some(&c.access),
            body: Some(body.clone()),
        };
        let resp = ask(&m, Proxy::Envoy, &submit).await;
        assert_eq!(resp.status(), 200, "{resp:?}");
        let h = resp.headers().clone();
        let job_id = header(&h, "x-computegate-job").expect("the job id for the upstream");
        assert_eq!(header(&h, "x-computegate-run"), Some("edge-run"));
        assert!(h.contains_key("x-computegate-estimate-flop"), "{h:?}");
        assert!(h.contains_key("x-computegate-remaining-flop"), "{h:?}");
        let remove = header(&h, "x-envoy-auth-headers-to-remove").unwrap_or("");
        assert!(!remove.contains("x-computegate-job"), "{remove}");
        // Metered and recorded as in proxy mode.
        let runs = m.runs(&staff, &c.id).await;
        let run = runs
            .iter()
            .find(|r| r["run_id"] == "edge-run")
            .unwrap_or_else(|| panic!("run not recorded: {runs:?}"));
        assert_eq!(run["jobs"], 1, "{run}");
        assert!(num(&run["reserved_flop"]) > 0.0, "{run}");
        // The upstream reports usage under the job id it was handed.
        let started = usage_event("authz-start", job_id, "started", None, "h100");
        assert_eq!(m.usage_ok(&started).await, "recorded");

        // Traefik with `forwardBody` sends it in its (GET) ask: admitted the same way.
        let resp = m
            .http
            .get(authz_url(&m, "/traefik"))
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-uri", "/v1/jobs")
            .header("x-forwarded-host", HOST)
            .header("authorization", format!("Bearer {}", c.access))
            .body(job("h100", 1, 0.5, "edge-run-2").to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{resp:?}");
        assert_eq!(
            header(resp.headers(), "x-computegate-run"),
            Some("edge-run-2")
        );
        assert!(resp.headers().contains_key("x-computegate-job"), "{resp:?}");

        // nginx never sends the body: refused, nothing admitted.
        let resp = ask(&m, Proxy::Nginx, &submit).await;
        expect_refusal(resp, Proxy::Nginx, 501, "job-body-not-forwarded").await;
        // Traefik without forwardBody, and Envoy with a truncated body, neither.
        let resp = ask(&m, Proxy::Traefik, &submit).await;
        expect_problem(resp, 501, "job-body-not-forwarded").await;
        let resp = m
            .http
            .post(authz_url(&m, "/envoy/v1/jobs"))
            .header("authorization", format!("Bearer {}", c.access))
            .header("x-envoy-auth-partial-body", "true")
            .body(body[..body.len() / 2].to_owned())
            .send()
            .await
            .expect("send");
        expect_problem(resp, 501, "job-body-not-forwarded").await;
        // An idempotency key's answer cannot be kept here: refused before admission.
        let resp = m
            .http
            .post(authz_url(&m, "/envoy/v1/jobs"))
            .header("authorization", format!("Bearer {}", c.access))
            .header("idempotency-key", "authz-key-1")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        expect_problem(resp, 400, "idempotency-key-unsupported").await;
        // A body that is not a job is refused as the proxy door refuses it.
        let bad = Original {
            body: Some(json!({"gpu_type": "h100"}).to_string()),
            ..submit
        };
        let proxied = through_proxy(&m, &bad).await;
        let status = proxied.status().as_u16();
        let proxied: Value = proxied.json().await.expect("problem");
        let resp = ask(&m, Proxy::Envoy, &bad).await;
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.json::<Value>().await.expect("problem"), proxied);

        let runs = m.runs(&staff, &c.id).await;
        let jobs: f64 = runs.iter().map(|r| num(&r["jobs"])).sum();
        assert_eq!(
            jobs, 2.0,
            "only the complete, unkeyed jobs were admitted: {runs:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn only_the_configured_proxies_are_answered() {
    within(TEST_TIMEOUT, async {
        let sim = support::Sim::start().await;
        let config = support::identity::identity_config(sim.addr, &Default::default())
            + "\n[authz]\naddr = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.2/32\"]\n";
        let gw = Gateway::start(&config).await;
        let addr = gw.authz.expect("authz listener");
        support::install_crypto();
        let from = |ip: [u8; 4]| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(ip))
                .build()
                .expect("client")
        };
        let ask = |http: reqwest::Client, path: &'static str| async move {
            http.get(format!("http://{addr}{path}"))
                .header("host", HOST)
                .header("x-original-method", "GET")
                .header("x-original-uri", "/v1/echo/public")
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-uri", "/v1/echo/public")
                .header("x-forwarded-host", HOST)
                .header("x-computegate-customer", "spoofed")
                .send()
                .await
                .expect("send")
        };
        for path in ["/nginx", "/traefik", "/envoy/v1/echo/public"] {
            let resp = ask(from([127, 0, 0, 1]), path).await;
            expect_problem(resp, 403, "authz-peer-not-trusted").await;
            // The trusted proxy is answered: a public route needs no identity, and none of the
            // client's own goes upstream.
            let resp = ask(from([127, 0, 0, 2]), path).await;
            assert_eq!(resp.status(), 200, "{path}: {resp:?}");
            let h = resp.headers();
            assert!(!h.contains_key("x-computegate-customer"), "{path}: {h:?}");
            if path.starts_with("/envoy") {
                let remove = header(h, "x-envoy-auth-headers-to-remove").unwrap_or("");
                for name in ["x-computegate-customer", "x-computegate-tier"] {
                    assert!(
                        remove.split(',').any(|n| n.trim() == name),
                        "{name} in {remove}"
                    );
                }
                assert!(!remove.contains("authorization"), "{remove}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn an_http2_ask_is_decided_for_the_host_of_its_authority() {
    within(TEST_TIMEOUT, async {
        // A host-bound authenticated route before a public route for any host: an ask that
        // lost its host would be allowed by the second without a credential.
        let rest = format!(
            "{}[[routes]]\nname = \"secure\"\nhost = \"{HOST}\"\npath_prefix = \"/\"\n\
             upstream = \"sim\"\nclass = \"authenticated\"\n\n\
             [[routes]]\nname = \"any-host\"\npath_prefix = \"/\"\nupstream = \"sim\"\n\
             class = \"public\"\n{AUTHZ}",
            support::upstream("sim", &[support::closed_port()], ""),
        );
        let gw = Gateway::start(&support::config("", &rest)).await;
        let addr = gw.authz.expect("authz listener");
        let url = format!("http://{HOST}:{}/envoy/v1/anything", addr.port());
        support::install_crypto();
        // Envoy's HTTP service over HTTP/2 names the client's host in `:authority` only.
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .resolve(HOST, addr)
            .build()
            .expect("client");
        let resp = h2.get(&url).send().await.expect("HTTP/2 ask");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        expect_problem(resp, 401, "unauthenticated").await;
        // Over HTTP/1.1 the same ask carries it in `Host`, with the same answer.
        let h1 = reqwest::Client::builder()
            .http1_only()
            .resolve(HOST, addr)
            .build()
            .expect("client");
        let resp = h1.get(&url).send().await.expect("HTTP/1.1 ask");
        expect_problem(resp, 401, "unauthenticated").await;
    })
    .await;
}
