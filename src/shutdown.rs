//! SIGTERM and SIGINT: the first begins a graceful shutdown, the second exits at once. SIGHUP: reload.

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
        crate::notify::stopping();
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

/// SIGHUP, as a stream of reload requests (never the default action, which ends the process at once).
pub fn on_reload() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = RELOADS.set(tx.clone());
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // One pending request is enough: reloads asked while one waits are the same reload.
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}

/// Where a reload is asked for besides SIGHUP (the admin API), once `on_reload` has run.
static RELOADS: std::sync::OnceLock<tokio::sync::mpsc::Sender<()>> = std::sync::OnceLock::new();

/// Asks for a reload exactly as SIGHUP does; `false` where nothing takes reloads (a daemon run in-process, not by
/// `chatbridge run`).
pub fn request_reload() -> bool {
    match RELOADS.get() {
        Some(tx) => {
            let _ = tx.try_send(());
            true
        }
        None => false,
    }
}
