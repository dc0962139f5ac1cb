//! Raw HTTP/1.1 exchanges for what high-level clients hide or normalise: exact request headers,
//! trailers, and bytes on a bare TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read whole over a raw hyper connection, trailers included.
#[derive(Debug)]
pub(crate) struct RawResponse {
    /// Status and headers.
    pub(crate) head: http::response::Parts,
    /// The body.
    pub(crate) body: Bytes,
    /// Trailer fields, if any arrived.
    pub(crate) trailers: Option<HeaderMap>,
}

/// Sends one request over a fresh raw HTTP/1.1 connection (hyper client, headers exactly as
/// given) and reads the whole response, trailers included.
pub(crate) async fn h1_exchange<B>(addr: SocketAddr, req: Request<B>) -> RawResponse
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("send request");
    let (head, body) = resp.into_parts();
    let collected = body.collect().await.expect("read body");
    let trailers = collected.trailers().cloned();
    RawResponse {
        head,
        body: collected.to_bytes(),
        trailers,
    }
}

/// Writes `bytes` on a fresh TCP connection, then reads until the peer closes (at most `limit`).
pub(crate) async fn tcp_exchange(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => out,
        // A reset after the answer still leaves the answer in `out`.
        Ok(Err(_)) => out,
        Err(_) => panic!(
            "connection still open after {limit:?}; got {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
}
