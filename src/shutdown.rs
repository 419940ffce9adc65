//! SIGTERM and SIGINT: the first begins a graceful shutdown, the second exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Exit status after a second signal.
pub const FORCED_EXIT: i32 = 130;

/// A token cancelled by the first SIGTERM or SIGINT; a second one ends the process.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // The shutdown begins before anything is logged: logging must never stand between a signal and it.
        stop.cancel();
        info!("Signal received: stopping (a second signal exits at once).");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("Second signal: exiting now.");
        std::process::exit(FORCED_EXIT);
    });
    Ok(token)
}
