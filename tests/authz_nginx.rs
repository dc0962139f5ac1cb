//! A real nginx (Debian's, `COMPUTEGATE_TEST_NGINX`, default `/usr/sbin/nginx`) in front of the
//! simulator, asking Computegate with `auth_request` through the shipped
//! `deploy/nginx/computegate-auth.conf`: allowed requests reach the simulator with the verified
//! identity (and none the client made up), refused ones get the status and problem document the
//! proxy door gives, and a job submission — whose body nginx cannot pass — is refused and
//! nothing is admitted.
//!
//! nginx runs in the foreground with its own port, and its pid, logs and temporary files in a
//! temporary directory (`user root;` so it also works as root).

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::identity::seen;
use support::metering::{Backend, Meter, job, policy, tiers};
use support::{TEST_TIMEOUT, TempDir, assert_problem_parts, within};

const DEFAULT_NGINX: &str = "/usr/sbin/nginx";

/// A foreground nginx, stopped (SIGTERM) when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free port with the shipped include, in front of `app`, asking
    /// `authz` and sending Computegate's own pages to `public`.
    fn start(authz: SocketAddr, public: SocketAddr, app: SocketAddr) -> Self {
        let binary = std::env::var("COMPUTEGATE_TEST_NGINX").unwrap_or(DEFAULT_NGINX.into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let include =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/computegate-auth.conf");
        let dir = TempDir::new("nginx");
        let d = dir.path().display();
        let conf = format!(
            "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               upstream computegate_authz {{ server {authz}; }}\n\
               upstream computegate_public {{ server {public}; }}\n\
               upstream computegate_app {{ server {app}; }}\n\
               server {{\n    listen {addr};\n    include {};\n  }}\n}}\n",
            include.display()
        );
        let conf_path: PathBuf = dir.write("nginx.conf", conf);
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {binary} (set COMPUTEGATE_TEST_NGINX): {e}"));
        let nginx = Self { child, addr, dir };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            let log =
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "nginx not listening; error.log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The proxy door's answer to the same request, as status and problem document.
async fn proxy_door(m: &Meter, method: &str, path: &str, bearer: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let resp = m
        .http
        .request(method, m.gw.url(path))
        .header("authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .expect("send");
    (resp.status().as_u16(), resp.json().await.expect("problem"))
}

/// nginx's answer is the proxy door's refusal `status`/`slug`, document for document.
async fn refused_like_the_proxy(resp: reqwest::Response, status: u16, slug: &str, proxied: &Value) {
    let headers = resp.headers().clone();
    assert_eq!(resp.status().as_u16(), status, "{headers:?}");
    let doc: Value = resp
        .json()
        .await
        .expect("nginx answers the problem document");
    assert_problem_parts(&headers, &doc, status, slug);
    assert_eq!(&doc, proxied, "the same document as the proxy door");
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
}

#[tokio::test]
#[ignore = "needs nginx"]
async fn nginx_auth_request_in_front_of_the_simulator() {
    within(TEST_TIMEOUT, async {
        let caps = "rate_limit = { requests_per_second = 0.01, burst = 3 }";
        let text = policy("nginx.1", &tiers(&[("unverified", caps)]), "");
        let m = Meter::start_edited(Backend::Sqlite, Some(&text), |c| {
            c + "\n[authz]\naddr = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n"
        })
        .await;
        let nginx = Nginx::start(m.gw.authz.expect("authz"), m.gw.public, m.sim.addr);
        let c = m.customer().await;

        // Allowed: the simulator sees the verified identity, not the credential nor a forgery.
        let resp = m
            .http
            .get(nginx.url("/v1/echo/things?page=2"))
            .header("authorization", format!("Bearer {}", c.access))
            .header("x-computegate-customer", "forged")
            .header("x-computegate-tier", "validated_end_user")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{resp:?}");
        assert!(
            resp.headers().contains_key("ratelimit-remaining"),
            "{resp:?}"
        );
        let echo: Value = resp.json().await.expect("echo");
        assert_eq!(echo["path"], "/v1/echo/things", "{echo}");
        assert_eq!(seen(&echo, "x-computegate-customer"), vec![c.id.clone()]);
        assert_eq!(
            seen(&echo, "x-computegate-tier"),
            vec!["unverified".to_string()]
        );
        assert!(seen(&echo, "authorization").is_empty(), "{echo}");
        assert_eq!(seen(&echo, "x-request-id").len(), 1, "{echo}");

        // Computegate's own pages pass through nginx to the public listener.
        let resp = m
            .http
            .get(nginx.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{resp:?}");

        // Unknown credential: 401 with one challenge and the proxy door's document.
        let bad = "cg_live_unknown0000000000000000";
        let (_, proxied) = proxy_door(&m, "GET", "/v1/echo/things", bad).await;
        let resp = m
            .http
            .get(nginx.url("/v1/echo/things"))
            .header("authorization", format!("Bearer {bad}"))
            .send()
            .await
            .expect("send");
        let challenges = resp.headers().get_all("www-authenticate").iter().count();
        assert_eq!(challenges, 1, "{resp:?}");
        refused_like_the_proxy(resp, 401, "unauthenticated", &proxied).await;

        // The tier may only read.
        let (_, proxied) = proxy_door(&m, "DELETE", "/v1/echo/things/1", &c.access).await;
        let resp = m
            .http
            .delete(nginx.url("/v1/echo/things/1"))
            .header("authorization", format!("Bearer {}", c.access))
            .send()
            .await
            .expect("send");
        refused_like_the_proxy(resp, 403, "tier-denied", &proxied).await;

        // No route.
        let (_, proxied) = proxy_door(&m, "GET", "/elsewhere", &c.access).await;
        let resp = m
            .http
            .get(nginx.url("/elsewhere"))
            .header("authorization", format!("Bearer {}", c.access))
            .send()
            .await
            .expect("send");
        refused_like_the_proxy(resp, 404, "no-route", &proxied).await;

        // The rate limit: 429 with Retry-After, as the proxy door (which shares the count).
        let r = m.customer().await;
        let get = || {
            m.http
                .get(nginx.url("/v1/echo/rate"))
                .header("authorization", format!("Bearer {}", r.access))
                .send()
        };
        for i in 0..3 {
            let resp = get().await.expect("send");
            assert_eq!(resp.status(), 200, "request {i} within the burst: {resp:?}");
        }
        let resp = get().await.expect("send");
        assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
        let (status, proxied) = proxy_door(&m, "GET", "/v1/echo/rate", &r.access).await;
        assert_eq!(status, 429);
        let proxied = Value::Object(
            proxied
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "detail" && k != "retry_after_seconds")
                .collect(),
        );
        let headers = resp.headers().clone();
        let doc: Value = resp.json().await.expect("429 document");
        assert_problem_parts(&headers, &doc, 429, "rate-limited");
        for (key, value) in proxied.as_object().into_iter().flatten() {
            assert_eq!(&doc[key], value, "{key} of {doc}");
        }

        // A job: nginx cannot pass its body, so it is refused and nothing reaches the simulator.
        let resp = m
            .http
            .post(nginx.url("/v1/jobs"))
            .header("authorization", format!("Bearer {}", c.access))
            .json(&job("h100", 1, 1.0, "through-nginx"))
            .send()
            .await
            .expect("send");
        let headers = resp.headers().clone();
        let doc: Value = resp.json().await.expect("501 document");
        assert_problem_parts(&headers, &doc, 501, "job-body-not-forwarded");
        assert!(
            m.sim_jobs()
                .await
                .iter()
                .all(|j| j["run_id"] != "through-nginx"),
            "an unmetered job reached the simulator"
        );
        let staff = m.staff("auditor").await;
        assert!(
            m.runs(&staff, &c.id).await.is_empty(),
            "nothing was admitted"
        );
    })
    .await;
}
