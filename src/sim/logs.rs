//! `GET /v1/jobs/{id}/logs`: a job's log, followed in real time until the job ends.
//!
//! The lines themselves come from the pure [`jobs::logs`]; this module only paces them: it sends
//! what exists, sleeps until the next line is due on the simulated clock (at most
//! [`POLL_INTERVAL`], so a cancellation is noticed promptly), and stops when the job ends or the
//! simulator shuts down. Plain clients get chunked `text/plain`, one line per log line; clients
//! that accept `text/event-stream` get one server-sent event per line and a final `event: end`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use tokio::sync::watch;
use uuid::Uuid;

use super::error::SimError;
use super::jobs::{self, LogBatch};
use super::state::{Sim, parse_id, path_id};

/// Longest real pause between two looks at a followed job.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One element of a followed log.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Line(String),
    /// The log is over; the reason (`succeeded`, `cancelled`, `failed`, `shutdown`, `gone`).
    End(&'static str),
}

/// Where a follower is in a job's log.
struct Follow {
    sim: Arc<Sim>,
    id: Uuid,
    next: usize,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

/// Streams a job's log.
pub(crate) async fn stream(
    State(sim): State<Arc<Sim>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, SimError> {
    let id = path_id(path)?;
    let uuid = parse_id(&id)?;
    let who = super::state::caller(&headers);
    sim.with_job(&id, who.as_deref(), |_, _| ())?;
    let follow = Follow {
        shutdown: sim.shutdown(),
        sim,
        id: uuid,
        next: 0,
        done: false,
    };
    let batches = stream::unfold(follow, next_batch);
    if wants_event_stream(&headers) {
        let events = batches.flat_map(|batch| stream::iter(batch.into_iter().map(event)));
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let chunks = batches
        .map(|batch| Ok::<_, Infallible>(Bytes::from(text(&batch))))
        .filter(|chunk| std::future::ready(chunk.as_ref().is_ok_and(|c| !c.is_empty())));
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        // Browsers otherwise buffer text/plain to sniff it, defeating the streaming.
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    Ok((headers, Body::from_stream(chunks)).into_response())
}

/// The next non-empty batch of the log, waiting for it if need be; `None` after the end.
async fn next_batch(mut f: Follow) -> Option<(Vec<Item>, Follow)> {
    if f.done {
        return None;
    }
    loop {
        if *f.shutdown.borrow() {
            return Some((f.finish("shutdown"), f));
        }
        let Some(batch) = look(&f.sim, &f.id, f.next) else {
            // Forgotten (retention limit) while being followed.
            return Some((f.finish("gone"), f));
        };
        f.next = batch.next;
        let mut items: Vec<Item> = batch.lines.into_iter().map(Item::Line).collect();
        if let Some(status) = batch.end {
            items.push(Item::End(status.as_str()));
            f.done = true;
            return Some((items, f));
        }
        if !items.is_empty() {
            return Some((items, f));
        }
        let wait = f.sim.clock.real_until(batch.next_at).min(POLL_INTERVAL);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // Ok (the flag turned true) or Err (the sender is gone): both mean shutdown, which
            // the check at the top of the loop reports.
            _ = f.shutdown.changed() => {
                return Some((f.finish("shutdown"), f));
            }
        }
    }
}

/// The log batch of job `id` from line `next`, if the job still exists. Holds the lock briefly.
fn look(sim: &Sim, id: &Uuid, next: usize) -> Option<LogBatch> {
    let now = sim.clock.now();
    let table = sim.jobs();
    table.get(id).map(|job| jobs::logs(job, now, next))
}

// === impl Follow ===

impl Follow {
    fn finish(&mut self, reason: &'static str) -> Vec<Item> {
        self.done = true;
        vec![
            Item::Line(format!("[sim] log ended: {reason}")),
            Item::End(reason),
        ]
    }
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// A batch as `text/plain`: the lines, each ending in `\n`.
fn text(batch: &[Item]) -> String {
    batch
        .iter()
        .filter_map(|item| match item {
            Item::Line(line) => Some(format!("{line}\n")),
            Item::End(_) => None,
        })
        .collect()
}

fn event(item: Item) -> Result<Event, Infallible> {
    Ok(match item {
        Item::Line(line) => Event::default().data(line),
        Item::End(reason) => Event::default().event("end").data(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn text_renders_lines_only() {
        let batch = vec![
            Item::Line("a".into()),
            Item::Line("b".into()),
            Item::End("succeeded"),
        ];
        assert_eq!(text(&batch), "a\nb\n");
        assert_eq!(text(&[Item::End("gone")]), "");
    }

    #[test]
    fn event_stream_is_negotiated_by_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_event_stream(&headers));
        headers.append(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_event_stream(&headers));
        headers.append(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        assert!(wants_event_stream(&headers));
    }
}
