//! `GET /v1/jobs/{id}/attach`: a WebSocket stand-in for an interactive job console. It echoes
//! each text frame back as `job {id}: {text}` (binary frames unchanged), which proves that an
//! HTTP/1.1 `Upgrade` passed through whatever sits in front of the simulator.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::response::Response;
use tokio::sync::watch;

use super::error::SimError;
use super::state::{Sim, path_id};

/// Upgrades to the job's console, if the job exists and the request is a WebSocket handshake.
pub(crate) async fn attach(
    State(sim): State<Arc<Sim>>,
    path: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, SimError> {
    let id = path_id(path)?;
    let who = super::state::caller(&headers);
    sim.with_job(&id, who.as_deref(), |_, _| ())?;
    let upgrade = upgrade.map_err(|rejection| SimError::NotWebSocket {
        status: rejection.status(),
        detail: rejection.body_text(),
    })?;
    let shutdown = sim.shutdown();
    Ok(upgrade.on_upgrade(move |socket| console(socket, id, shutdown)))
}

/// Echoes frames until the client closes or the simulator shuts down.
async fn console(mut socket: WebSocket, id: String, mut shutdown: watch::Receiver<bool>) {
    tracing::debug!(job = %id, "console attached");
    loop {
        if *shutdown.borrow() {
            return close(socket).await;
        }
        let reply = tokio::select! {
            received = socket.recv() => match received {
                Some(Ok(Message::Text(text))) => Message::Text(echo_line(&id, &text).into()),
                Some(Ok(Message::Binary(data))) => Message::Binary(data),
                // Pings are answered by the protocol layer; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            // Either the flag turned true or the sender is gone: both mean shutdown.
            _ = shutdown.changed() => return close(socket).await,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

async fn close(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: close_code::AWAY,
        reason: "simulator shutting down".into(),
    };
    // The peer may already be gone; nothing more to do then.
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// The console's reply to `text`.
fn echo_line(id: &str, text: &str) -> String {
    format!("job {id}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_prefixes_the_job() {
        assert_eq!(echo_line("abc", "nvidia-smi"), "job abc: nvidia-smi");
    }
}
