//! Listeners: accept loops for plain TCP and TLS, HTTP/1.1 and HTTP/2 serving, the 408 answer to
//! slow clients, and graceful drain on shutdown.
//!
//! One accept loop serves any [`Handler`]: the data plane ([`crate::proxy::Gateway`]) on the
//! public listener and [`crate::admin::Admin`] on the admin listener.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::ResponseBody;
use crate::config::ServerConfig;
use crate::conn_io::HeadWatch;
use crate::error::GatewayError;
use crate::h2_headers::H2HeaderWatch;
use crate::proxy::{ConnFacts, Gateway};

/// Something that answers requests on a listener.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request that arrived on a connection described by `conn`.
    fn call(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnFacts,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static;
}

impl Handler for Gateway {
    async fn call(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnFacts,
    ) -> Response<ResponseBody> {
        if !req
            .headers()
            .contains_key(&crate::idempotency::IDEMPOTENCY_KEY)
        {
            return self.handle(req, conn).await;
        }
        // A keyed submission is finished even when its client goes away (the usual reason
        // to retry): a request dropped between admission and the upstream's answer would
        // leave its key in flight, and its retries refused, until the key expires.
        match tokio::spawn(async move { self.handle(req, conn).await }).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!(error = %e, "request task failed");
                let problem = GatewayError::Unavailable {
                    reason: "the request could not be completed",
                    retry_after: Duration::from_secs(1),
                };
                problem.to_problem().into_response().map(ResponseBody::full)
            }
        }
    }
}

/// Connection-level settings shared by the listeners.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Time to receive a request head (and idle keep-alive limit).
    pub header_read_timeout: Duration,
    /// Largest request head the gateway answers with its own 431 document.
    pub max_header_bytes: u64,
    /// How long in-flight requests may finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl From<&ServerConfig> for ServeSettings {
    fn from(c: &ServerConfig) -> Self {
        Self {
            header_read_timeout: c.header_read_timeout,
            max_header_bytes: c.max_header_bytes.as_u64(),
            shutdown_grace: c.shutdown_grace,
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4) that prior-knowledge clients send first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's handle on the listener's drain signal.
type Watcher = watch::Receiver<()>;

/// Connection builders for each protocol, shared by every connection of a listener.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// Serves `handler` on `listener` until `shutdown` turns true, then drains for at most
/// `settings.shutdown_grace`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    tls: Option<TlsAcceptor>,
    settings: ServeSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let protocols = Arc::new(Protocols::new(&settings));
    // Every connection holds a receiver; shutdown signals it and waits until all are dropped.
    let (drain_tx, drain_rx) = watch::channel(());
    let stopped = async move {
        // The guard `wait_for` yields is not `Send`; drop it inside this future.
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = ConnFacts { ip: peer.ip(), tls: tls.is_some() };
                let watcher = drain_rx.clone();
                let handler = handler.clone();
                let protocols = protocols.clone();
                let timeout = settings.header_read_timeout;
                match &tls {
                    None => {
                        tokio::spawn(serve_plain(stream, conn, handler, protocols, watcher, timeout));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let handshake = tokio::time::timeout(timeout, acceptor.accept(stream));
                            let stream = match handshake.await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    return;
                                }
                            };
                            // Over TLS the protocol is what ALPN chose; no sniffing needed.
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let settings = (h2, timeout);
                            if let Err(e) = serve_io(stream, settings, handler, conn, &protocols, watcher).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    drop(drain_rx);
    let open = drain_tx.receiver_count();
    tracing::info!(open_connections = open, "listener closed; draining");
    let _ = drain_tx.send(());
    tokio::select! {
        _ = drain_tx.closed() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!("shutdown grace elapsed; closing remaining connections");
        }
    }
}

/// What the first bytes of a plain connection said.
enum Sniffed {
    /// Nothing arrived in time, or the client closed: drop quietly.
    Silent,
    /// Part of a request arrived, then the client stalled: answer 408.
    Stalled,
    /// The protocol is known; these bytes were read and must be replayed.
    Ready { prefix: Bytes, h2: bool },
}

/// Reads until the bytes tell HTTP/2 prior knowledge from HTTP/1.x, within `timeout`.
async fn sniff(stream: &mut TcpStream, timeout: Duration) -> Sniffed {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = BytesMut::with_capacity(H2_PREFACE.len());
    loop {
        let mut chunk = [0u8; 24];
        let want = H2_PREFACE.len() - buf.len();
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) if buf.is_empty() => return Sniffed::Silent,
            Ok(Ok(0)) | Ok(Err(_)) => {
                // Closed mid-preface: let HTTP/1 parsing produce its own error.
                return Sniffed::Ready {
                    prefix: buf.freeze(),
                    h2: false,
                };
            }
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if !H2_PREFACE.starts_with(&buf) {
                    return Sniffed::Ready {
                        prefix: buf.freeze(),
                        h2: false,
                    };
                }
                if buf.len() == H2_PREFACE.len() {
                    return Sniffed::Ready {
                        prefix: buf.freeze(),
                        h2: true,
                    };
                }
            }
            Err(_) if buf.is_empty() => return Sniffed::Silent,
            Err(_) => return Sniffed::Stalled,
        }
    }
}

/// Plain TCP: sniffs the protocol under the header timeout, then serves. Keeps a duplicate of
/// the socket so a 408 can be written after hyper gives up on a slow request head (hyper closes
/// such connections without an answer).
async fn serve_plain<H: Handler>(
    mut stream: TcpStream,
    conn: ConnFacts,
    handler: Arc<H>,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    timeout: Duration,
) {
    let (prefix, h2) = match sniff(&mut stream, timeout).await {
        Sniffed::Silent => return,
        Sniffed::Stalled => {
            let _ = stream.write_all(&timeout_response()).await;
            let _ = stream.shutdown().await;
            return;
        }
        Sniffed::Ready { prefix, h2 } => (prefix, h2),
    };
    let spare = stream
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    let (io, partial) = HeadWatch::new(stream, prefix);
    if let Err(e) = serve_io(io, (h2, timeout), handler, conn, &protocols, watcher).await {
        if e.is_timeout()
            && partial.load(Ordering::Relaxed)
            && let Some(mut spare) = spare
        {
            let _ = spare.write_all(&timeout_response());
            let _ = spare.shutdown(std::net::Shutdown::Both);
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Serves one connection with the chosen protocol (`h2`), tracked for graceful shutdown. An
/// HTTP/2 connection's header blocks must complete within `header_timeout` (see
/// [`crate::h2_headers`]); hyper's HTTP/1 builder has its own header timer.
async fn serve_io<S, H>(
    io: S,
    (h2, header_timeout): (bool, Duration),
    handler: Arc<H>,
    conn: ConnFacts,
    protocols: &Protocols,
    watcher: Watcher,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let svc = service(handler, conn);
    if h2 {
        let io = TokioIo::new(H2HeaderWatch::new(io, header_timeout));
        drive(protocols.http2.serve_connection(io, svc), watcher).await
    } else {
        drive(
            protocols
                .http1
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades(),
            watcher,
        )
        .await
    }
}

/// A served connection that can be asked to finish its in-flight requests and close.
trait Drainable: Future<Output = Result<(), hyper::Error>> {
    fn start_drain(self: Pin<&mut Self>);
}

impl<I, S> Drainable for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = ResponseBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn start_drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Drainable for http2::Connection<I, S, TokioExecutor>
where
    S: hyper::service::HttpService<Incoming, ResBody = ResponseBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn start_drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `conn` to completion; when the drain signal comes, asks it to finish and close.
async fn drive<C: Drainable>(conn: C, mut drain: Watcher) -> Result<(), hyper::Error> {
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => return res,
        _ = drain.changed() => conn.as_mut().start_drain(),
    }
    conn.await
}

fn service<H: Handler>(
    handler: Arc<H>,
    conn: ConnFacts,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ResponseBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    service_fn(move |req| {
        // Boxed: the handler's future is several kilobytes (every await point of the proxy and
        // the control plane), and hyper's HTTP/2 server spawns one task per stream holding it.
        // Unboxed, tokio copied the whole future into the task cell and again at every stage
        // change of the task and of hyper's stream state (`memmove` was 11-13 % of the proxy's
        // CPU under h2load); boxed, those moves copy a pointer.
        let fut = Box::pin(handler.clone().call(req, conn));
        async move { Ok::<_, Infallible>(fut.await) }
    })
}

// === impl Protocols ===

impl Protocols {
    fn new(settings: &ServeSettings) -> Self {
        let mut http1 = http1::Builder::new();
        // hyper answers heads beyond its buffer with a bare 431; leave room above our own limit
        // so the gateway's problem document is what clients normally see.
        let buf = (settings.max_header_bytes as usize * 2).max(16 * 1024);
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_buf_size(buf)
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(settings.max_header_bytes.min(u64::from(u32::MAX)) as u32)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        Self { http1, http2 }
    }
}

/// The raw HTTP/1.1 408 answer written when a client stalls in its request head.
fn timeout_response() -> Vec<u8> {
    let body =
        serde_json::to_vec(&GatewayError::HeaderTimeout.to_problem().to_json()).unwrap_or_default();
    let request_id = crate::forward::request_id(&http::HeaderMap::new());
    let mut out = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-request-id: {}\r\nconnection: close\r\n\r\n",
        crate::problem::PROBLEM_CONTENT_TYPE,
        body.len(),
        request_id.to_str().unwrap_or("unknown"),
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Completes when SIGTERM or SIGINT arrives.
pub async fn termination_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
