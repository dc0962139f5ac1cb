//! Listeners: accept loops for plain TCP and TLS, HTTP/1.1 and HTTP/2 serving, the 408 answer to
//! slow clients, and graceful drain on shutdown.
//!
//! One accept loop serves any [`Handler`]: the data plane ([`crate::proxy::Gateway`]) on the
//! public listener and [`crate::admin::Admin`] on the admin listener.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::body::ResponseBody;
use crate::config::ServerConfig;
use crate::conn_io::HeadWatch;
use crate::error::GatewayError;
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
        self.handle(req, conn).await
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

/// Serves `handler` on `listener` until `shutdown` turns true, then drains for at most
/// `settings.shutdown_grace`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    tls: Option<TlsAcceptor>,
    settings: ServeSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(http_builder(&settings));
    let graceful = GracefulShutdown::new();
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
                let watcher = graceful.watcher();
                let handler = handler.clone();
                let builder = builder.clone();
                let settings = settings.clone();
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            serve_plain(stream, conn, handler, &builder, watcher).await;
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let handshake = tokio::time::timeout(
                                settings.header_read_timeout,
                                acceptor.accept(stream),
                            );
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
                            let svc = service(handler, conn);
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(open_connections = open, "listener closed; draining");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!("shutdown grace elapsed; closing remaining connections");
        }
    }
}

/// Plain TCP: keeps a duplicate of the socket so a 408 can be written after hyper gives up on a
/// slow request head (hyper closes such connections without an answer).
async fn serve_plain<H: Handler>(
    stream: TcpStream,
    conn: ConnFacts,
    handler: Arc<H>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let spare = stream
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    let (io, partial) = HeadWatch::new(stream);
    let svc = service(handler, conn);
    let served = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    if let Err(e) = watcher.watch(served).await {
        let timed_out = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if timed_out
            && partial.load(Ordering::Relaxed)
            && let Some(mut spare) = spare
        {
            let _ = spare.write_all(&timeout_response());
            let _ = spare.shutdown(std::net::Shutdown::Both);
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
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
        let fut = handler.clone().call(req, conn);
        async move { Ok::<_, Infallible>(fut.await) }
    })
}

fn http_builder(settings: &ServeSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper answers heads beyond its buffer with a bare 431; leave room above our own limit so
    // the gateway's problem document is what clients normally see.
    let buf = (settings.max_header_bytes as usize * 2).max(16 * 1024);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(buf)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes.min(u64::from(u32::MAX)) as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// The raw HTTP/1.1 408 answer written after hyper abandons a slow request head.
fn timeout_response() -> Vec<u8> {
    let body =
        serde_json::to_vec(&GatewayError::HeaderTimeout.to_problem().to_json()).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        crate::problem::PROBLEM_CONTENT_TYPE,
        body.len()
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
