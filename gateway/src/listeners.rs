//! Data-plane listeners spread over serving threads (`server.runtime`, see
//! [`crate::config::ServerRuntime`]).
//!
//! A [`Listener`] is one socket per serving thread on the same address. With one thread (the
//! `work_stealing` runtime, where any worker of the process's multi-thread runtime runs any
//! connection) it is an ordinary socket. With several (`thread_per_core`) every socket is bound
//! with `SO_REUSEPORT`, so the kernel spreads new connections over them, and every thread runs
//! its sockets on its own current-thread tokio runtime: a connection stays on the thread that
//! accepted it, with no cross-thread wake-ups or work stealing on the request path. The first
//! socket is always served on the calling runtime (in `thread_per_core` itself a current-thread
//! runtime, which also runs the admin listener and the background tasks), so both runtimes go
//! through the one accept loop, [`crate::server::serve`].
//!
//! A connection's upstream requests go through its own thread's upstream client
//! ([`serving_thread`] picks it), so a pooled upstream connection never crosses threads. Other
//! resources still may: a store connection opened while serving on one thread is registered with
//! that thread's reactor and can be lent to another from the shared pool. So no serving thread's
//! runtime ends before all of them have drained and the process is done with them
//! ([`ServingThreads`]): a thread that drained first keeps driving its reactor for the others.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Handler, ServeSettings};

/// Pending connections the kernel queues per socket: what `TcpListener::bind` uses.
const BACKLOG: i32 = 128;

/// An accept loop waiting for its thread's runtime.
type ServeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// This thread's place among the serving threads; 0 for the calling thread and for every
    /// thread that is not a serving thread (the `work_stealing` runtime's workers).
    static SERVING_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// The index of the serving thread running the caller: `0..threads`, where `threads` is
/// [`crate::config::ServerConfig::listener_threads`].
pub fn serving_thread() -> usize {
    SERVING_THREAD.get()
}

/// One address bound once per serving thread.
#[derive(Debug)]
pub struct Listener {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

/// The serving threads: the calling runtime's and `count - 1` more, started by
/// [`Threads::start`] once every listener has been handed out.
pub struct Threads {
    count: usize,
    /// What each extra thread serves, in thread order.
    work: Vec<Vec<ServeFuture>>,
}

/// The started extra threads: one task per thread that ends when the thread's listeners have
/// drained, and the guard that keeps every thread's runtime (and reactor) running until dropped.
pub struct ServingThreads {
    /// One per extra thread, in thread order.
    pub drained: Vec<JoinHandle<()>>,
    /// Dropping it lets every drained thread end its runtime.
    pub release: ReleaseThreads,
}

/// Keeps the extra serving threads' runtimes alive; they end once this is dropped.
pub struct ReleaseThreads {
    _release: watch::Sender<()>,
}

// === impl Listener ===

impl Listener {
    /// The bound address (after binding port 0, the real port every socket shares).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

// === impl Threads ===

impl Threads {
    /// `count` serving threads (at least one: the caller's).
    pub fn new(count: usize) -> Self {
        let count = count.max(1);
        Self {
            count,
            work: (1..count).map(|_| Vec::new()).collect(),
        }
    }

    /// Binds `addr` once per thread. Several sockets share the address through `SO_REUSEPORT`;
    /// a single socket does not set it, so a second process cannot silently share the port.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<Listener> {
        let first = bind_one(addr, self.count > 1)?;
        // Port 0 picks a port for the first socket; the others join that one.
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..self.count {
            sockets.push(bind_one(addr, true)?);
        }
        Ok(Listener { sockets, addr })
    }

    /// Serves `handler` on every socket of `listener` until `stop` turns true: the first on the
    /// calling runtime now (the returned task), the others on their threads once started.
    pub fn serve<H: Handler>(
        &mut self,
        listener: Listener,
        handler: Arc<H>,
        tls: Option<TlsAcceptor>,
        settings: &ServeSettings,
        stop: &watch::Receiver<bool>,
    ) -> io::Result<JoinHandle<()>> {
        let mut sockets = listener.sockets.into_iter();
        let first = sockets.next().expect("one socket per thread");
        let own = server::serve(
            TcpListener::from_std(first)?,
            handler.clone(),
            tls.clone(),
            settings.clone(),
            stop.clone(),
        );
        for (socket, work) in sockets.zip(&mut self.work) {
            let (handler, tls, settings, stop) =
                (handler.clone(), tls.clone(), settings.clone(), stop.clone());
            work.push(Box::pin(async move {
                // Registered with the reactor of the thread that polls this, its own.
                match TcpListener::from_std(socket) {
                    Ok(socket) => server::serve(socket, handler, tls, settings, stop).await,
                    Err(e) => tracing::error!(error = %e, "cannot serve a listener socket"),
                }
            }));
        }
        Ok(tokio::spawn(own))
    }

    /// Starts the extra threads, each a current-thread runtime running what it was handed until
    /// all of it has drained, and then on until the returned release guard is dropped.
    pub fn start(self) -> io::Result<ServingThreads> {
        let (release, released) = watch::channel(());
        let mut drained = Vec::with_capacity(self.work.len());
        for (i, work) in self.work.into_iter().enumerate() {
            // Built here so that a failure is a startup error, not a silent missing thread.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (finished, finished_rx) = oneshot::channel::<()>();
            let mut released = released.clone();
            std::thread::Builder::new()
                // Short enough for Linux's 15-byte thread names (`top -H`, /proc/PID/task).
                .name(format!("cg-serve-{}", i + 1))
                .spawn(move || {
                    SERVING_THREAD.set(i + 1);
                    runtime.block_on(async move {
                        let tasks: Vec<_> = work.into_iter().map(tokio::spawn).collect();
                        for task in tasks {
                            let _ = task.await;
                        }
                        drop(finished);
                        // Ends with an error once the guard is dropped.
                        while released.changed().await.is_ok() {}
                    });
                })?;
            // Also ends if the thread panics: the sender is dropped either way.
            drained.push(tokio::spawn(async move {
                let _ = finished_rx.await;
            }));
        }
        Ok(ServingThreads {
            drained,
            release: ReleaseThreads { _release: release },
        })
    }
}

/// One non-blocking listening socket on `addr`, with `SO_REUSEADDR` as `TcpListener::bind`
/// sets it, and `SO_REUSEPORT` when `shared`.
fn bind_one(addr: SocketAddr, shared: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_thread_gets_a_socket_on_the_same_port() {
        let threads = Threads::new(3);
        let listener = threads.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(listener.local_addr().port(), 0);
        assert_eq!(listener.sockets.len(), 3);
        for socket in &listener.sockets {
            assert_eq!(socket.local_addr().unwrap(), listener.local_addr());
        }
    }

    #[tokio::test]
    async fn a_drained_thread_keeps_its_runtime_until_released() {
        let mut threads = Threads::new(2);
        let (ticks_tx, mut ticks) = tokio::sync::mpsc::unbounded_channel();
        threads.work[0].push(Box::pin(async move {
            // A task the thread's work leaves behind, as a connection it opened would.
            tokio::spawn(async move {
                loop {
                    if ticks_tx.send(serving_thread()).is_err() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            });
        }));
        let started = threads.start().unwrap();
        for drained in started.drained {
            drained.await.unwrap();
        }
        // Drained, but the runtime still runs what was spawned on it, on thread 1.
        for _ in 0..3 {
            assert_eq!(ticks.recv().await, Some(1));
        }
        assert_eq!(serving_thread(), 0);
        drop(started.release);
        // Released: the runtime ends and drops the task, and with it the sender.
        while ticks.recv().await.is_some() {}
    }

    #[tokio::test]
    async fn each_serving_thread_has_its_own_upstream_client() {
        use crate::upstream::{UpstreamClient, UpstreamPool};
        let config = toml::from_str("addresses = [\"127.0.0.1:1\"]").unwrap();
        let pool = Arc::new(UpstreamPool::new("p", &config, 2).unwrap());
        let address = |client: &UpstreamClient| client as *const UpstreamClient as usize;
        let mut threads = Threads::new(2);
        let (theirs_tx, theirs) = oneshot::channel();
        let on_thread_1 = pool.clone();
        threads.work[0].push(Box::pin(async move {
            let _ = theirs_tx.send(address(on_thread_1.client()));
        }));
        let _started = threads.start().unwrap();
        let theirs = theirs.await.unwrap();
        assert_ne!(theirs, address(pool.client()));
        // The same thread always gets the same client.
        assert_eq!(address(pool.client()), address(pool.client()));
    }

    #[tokio::test]
    async fn a_single_socket_does_not_share_its_port() {
        let threads = Threads::new(1);
        let listener = threads.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(listener.sockets.len(), 1);
        // Without SO_REUSEPORT on the first socket, nobody can join it.
        let err = bind_one(listener.local_addr(), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
