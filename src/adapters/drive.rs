//! The task structure every adapter shares: its receivers and its sends, run together until the daemon closes.

use std::future::Future;

use tokio::sync::mpsc;

use super::{AccountState, AccountStop, AdapterContext, SendFailure, SendRequest};

/// The task structure every adapter shares: the `receivers` (a connection per room, or one for the
/// account) and `send(request)` for each send, concurrently. Returns when the daemon closes; when the
/// account stops, what is still asked of it is answered with `Fatal` and the sends in flight finish.
pub async fn drive<R, S, SF>(
    ctx: AdapterContext,
    mut sends: mpsc::UnboundedReceiver<SendRequest>,
    stop: AccountStop,
    receivers: Vec<R>,
    send: S,
) where
    R: Future<Output = ()> + Send + 'static,
    S: Fn(SendRequest) -> SF,
    SF: Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    // One state for the account, whatever its number of rooms: connecting until a room is up.
    if !stop.is_stopped() {
        let first = if receivers.is_empty() { AccountState::Connected } else { AccountState::Connecting };
        ctx.set_state(first).await;
    }
    for receiver in receivers {
        // In the adapter's span (its `account`): a spawned task does not inherit it.
        tasks.spawn(tracing::Instrument::in_current_span(receiver));
    }
    loop {
        tokio::select! {
            _ = ctx.closed.cancelled() => return finish(tasks).await,
            _ = stop.stopped() => break,
            request = sends.recv() => match request {
                Some(request) => {
                    // A send that completes at once (the API's, most of the time) needs no task of its own.
                    let mut sending = Box::pin(send(request));
                    if futures_util::FutureExt::now_or_never(sending.as_mut()).is_none() {
                        tasks.spawn(tracing::Instrument::in_current_span(sending));
                    }
                }
                // The router takes no more sends for this account (it went to another instance, or left the
                // configuration): what the receivers have read is still handed over, until they end.
                None => {
                    loop {
                        tokio::select! {
                            _ = ctx.closed.cancelled() => return finish(tasks).await,
                            joined = tasks.join_next() => if joined.is_none() {
                                return;
                            },
                        }
                    }
                }
            },
            // A finished task stays in the set until it is joined: reaped here, or every send would keep
            // its task's memory until the account stops.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    sends.close();
    while let Some(request) = sends.recv().await {
        ctx.ack(&request.room, Err(SendFailure::Fatal { reason: "the account has stopped".to_owned() })).await;
    }
    tokio::select! {
        _ = ctx.closed.cancelled() => tasks.abort_all(),
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
}

/// At the close: receivers that stopped receiving may still be handing over what they read (a poll that was in
/// flight hands itself over to a task of its own): a moment for them, then everything ends.
async fn finish(mut tasks: tokio::task::JoinSet<()>) {
    let finishing = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), finishing).await;
    tasks.abort_all();
}
