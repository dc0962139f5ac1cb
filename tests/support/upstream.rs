//! Test-side upstream servers: a plain hyper HTTP/1.1 server whose handler the test supplies,
//! for behaviour the simulator does not offer (response trailers, telling two upstreams apart).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Body of responses from a test upstream.
pub(crate) type UpBody = BoxBody<Bytes, Infallible>;

/// A boxed handler future.
pub(crate) type UpFuture = Pin<Box<dyn Future<Output = Response<UpBody>> + Send>>;

/// A test upstream; stops accepting when dropped.
#[derive(Debug)]
pub(crate) struct TestUpstream {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

// === impl TestUpstream ===

impl TestUpstream {
    /// Serves `handler` on a fresh port.
    pub(crate) async fn start<F>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> UpFuture + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, handler)
    }

    /// Serves `handler` on `listener`.
    pub(crate) fn serve<F>(listener: TcpListener, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> UpFuture + Send + Sync + 'static,
    {
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let counter = counter.clone();
                let svc = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, hits, task }
    }

    /// Requests received so far.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A complete response body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> UpBody {
    Full::new(bytes.into()).boxed()
}
