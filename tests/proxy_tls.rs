//! Black-box TLS tests through the real binary: HTTP/2 and HTTP/1.1 over TLS chosen by ALPN
//! (rustls clients), and certificate reload on SIGHUP without dropping open connections.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use support::{
    Gateway, RUNTIME_VAR, Sim, TEST_TIMEOUT, TempDir, install_crypto, sim_everything, within,
};

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM, certificate DER).
fn self_signed() -> (String, String, CertificateDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    (
        key.cert.pem(),
        key.signing_key.serialize_pem(),
        key.cert.der().clone(),
    )
}

/// A TLS gateway in front of `sim`, with its certificate files in `dir` and `env` added.
async fn tls_gateway(
    sim: &Sim,
    dir: &TempDir,
    (cert_pem, key_pem): (&str, &str),
    env: &[(&str, &str)],
) -> Gateway {
    let cert = dir.write("cert.pem", cert_pem);
    let key = dir.write("key.pem", key_pem);
    let text = sim_everything(sim.addr, "", "").replace(
        "\n[upstreams.sim]",
        &format!("[server.tls]\ncert = {cert:?}\nkey = {key:?}\n\n[upstreams.sim]"),
    );
    Gateway::start_with_env(&text, env).await
}

/// A reqwest client that trusts only `cert_pem` and reaches `localhost` at `addr`.
fn https_client(cert_pem: &str, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
    install_crypto();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("PEM"))
        .resolve("localhost", addr);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().expect("client")
}

/// A rustls connector that trusts exactly `trusted` and offers `alpn`.
fn connector(trusted: &CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("trust anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every handshake must show the certificate served now, not resume an earlier session.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    connector.connect(name, tcp).await
}

/// An HTTP/1.1 connection over `tls`, ready to send requests.
async fn h1_over(
    tls: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn ping(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> (u16, Bytes) {
    let req = Request::get("/v1/ping")
        .header("host", "localhost")
        .body(Empty::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect().await.expect("body").to_bytes(),
    )
}

#[tokio::test]
async fn http2_and_http1_over_tls_by_alpn() {
    within(TEST_TIMEOUT, serves_http2_and_http1_by_alpn(&[])).await;
}

#[tokio::test]
async fn work_stealing_serves_http2_and_http1_over_tls() {
    let env = [(RUNTIME_VAR, "work_stealing")];
    within(TEST_TIMEOUT, serves_http2_and_http1_by_alpn(&env)).await;
}

#[tokio::test]
async fn thread_per_core_serves_http2_and_http1_over_tls() {
    let env = [
        (RUNTIME_VAR, "thread_per_core"),
        ("COMPUTEGATE_SERVER__WORKER_THREADS", "2"),
    ];
    within(TEST_TIMEOUT, serves_http2_and_http1_by_alpn(&env)).await;
}

/// A TLS gateway started with `env` answers HTTP/2 and HTTP/1.1 as ALPN chose.
async fn serves_http2_and_http1_by_alpn(env: &[(&str, &str)]) {
    let sim = Sim::start().await;
    let dir = TempDir::new("tls");
    let (cert, key, der) = self_signed();
    let gw = tls_gateway(&sim, &dir, (&cert, &key), env).await;
    let url = format!("https://localhost:{}/v1/echo?x=1", gw.public.port());

    for (http1_only, version) in [
        (false, http::Version::HTTP_2),
        (true, http::Version::HTTP_11),
    ] {
        let resp = https_client(&cert, gw.public, http1_only)
            .post(&url)
            .body(vec![1u8; 4096])
            .send()
            .await
            .expect("send over TLS");
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("x-request-id"));
        let e: Value = resp.json().await.expect("echo JSON");
        assert_eq!(e["method"], "POST", "{e}");
        assert_eq!(e["query"], "x=1", "{e}");
        assert_eq!(e["body_bytes"], 4096, "{e}");
        // The gateway speaks HTTP/1.1 upstream, and says the client came over https.
        assert_eq!(e["version"], "HTTP/1.1", "{e}");
        assert_eq!(
            e["headers"]["x-forwarded-proto"],
            serde_json::json!(["https"]),
            "{e}"
        );
        assert_eq!(
            e["headers"]["host"],
            serde_json::json!([format!("localhost:{}", gw.public.port())]),
            "{e}"
        );
    }

    // ALPN picks exactly what the client offers.
    for proto in [&b"h2"[..], &b"http/1.1"[..]] {
        let tls = tls_connect(gw.public, &connector(&der, &[proto]))
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(proto));
    }
}

#[tokio::test]
async fn http2_requests_get_forwarding_host() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let dir = TempDir::new("tls");
        let (cert, key, _) = self_signed();
        let gw = tls_gateway(&sim, &dir, (&cert, &key), &[]).await;
        let authority = format!("localhost:{}", gw.public.port());
        let resp = https_client(&cert, gw.public, false)
            .get(format!("https://{authority}/v1/echo"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let e: Value = resp.json().await.expect("echo JSON");
        // HTTP/2 carries the host in `:authority`; upstream sees it as on HTTP/1.1.
        assert_eq!(
            e["headers"]["x-forwarded-host"],
            serde_json::json!([authority]),
            "{e}"
        );
        let forwarded = format!("for=127.0.0.1;proto=https;host=\"{authority}\"");
        assert_eq!(
            e["headers"]["forwarded"],
            serde_json::json!([forwarded]),
            "{e}"
        );
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_keeping_connections() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let dir = TempDir::new("tls");
        let (cert_a, key_a, der_a) = self_signed();
        let (cert_b, key_b, der_b) = self_signed();
        let gw = tls_gateway(&sim, &dir, (&cert_a, &key_a), &[]).await;
        let (trust_a, trust_b) = (
            connector(&der_a, &[b"http/1.1"]),
            connector(&der_b, &[b"http/1.1"]),
        );

        let mut held = h1_over(tls_connect(gw.public, &trust_a).await.expect("A is served")).await;
        assert_eq!(ping(&mut held).await.0, 200);
        assert!(
            tls_connect(gw.public, &trust_b).await.is_err(),
            "B served before the reload"
        );

        dir.write("cert.pem", &cert_b);
        dir.write("key.pem", &key_b);
        gw.proc.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(15);
        let fresh = loop {
            match tls_connect(gw.public, &trust_b).await {
                Ok(tls) => break tls,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "B never served after SIGHUP: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut fresh = h1_over(fresh).await;
        assert_eq!(ping(&mut fresh).await.0, 200);
        assert!(
            tls_connect(gw.public, &trust_a).await.is_err(),
            "A still served after the reload"
        );

        // The connection from before the reload was not dropped.
        let (status, body) = ping(&mut held).await;
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("computegate-simulator"));
    })
    .await;
}
