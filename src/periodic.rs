//! Background loops of the services: run a step every period until the gateway stops or the
//! service is dropped (the loop holds only a weak reference, so it never keeps a service alive).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Runs `step(service)` every `period` (a late tick is delayed, never bunched) until `stop`
/// turns true or closes, or `service` is dropped.
pub(crate) fn every<T, F, Fut>(
    service: &Arc<T>,
    mut stop: watch::Receiver<bool>,
    period: Duration,
    step: F,
) where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            }
            let Some(service) = weak.upgrade() else { break };
            step(service).await;
        }
    });
}
