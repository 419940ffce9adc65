//! In-process platform simulators: loopback servers speaking each platform's wire protocol, with a
//! control API (inject a message as a user, read what the bridge sent, drop connections, restart,
//! fail on purpose). They serve `chatbridge demo`, the integration tests and the benchmarks.

pub mod contract;
pub mod fishroom;
pub mod heihei;
pub mod iirose;
pub mod missevan;
pub mod yunhu;

#[cfg(test)]
mod conformance;

use std::net::SocketAddr;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// The open websocket sessions of a simulator. Each session holds the tokens current when it opened:
/// cancelling `dropped` cuts it without a close frame; cancelling `muted` makes it go silent, still open.
#[derive(Default)]
pub struct Sessions {
    dropped: std::sync::Mutex<CancellationToken>,
    muted: std::sync::Mutex<CancellationToken>,
}

impl Sessions {
    /// The (dropped, muted) tokens for a session opening now.
    pub fn tokens(&self) -> (CancellationToken, CancellationToken) {
        (lock(&self.dropped).clone(), lock(&self.muted).clone())
    }

    /// Cuts every open session; later ones are not affected.
    pub fn drop_all(&self) {
        renew(&self.dropped);
    }

    /// Every open session stops answering anything; later ones are not affected.
    pub fn mute_all(&self) {
        renew(&self.muted);
    }
}

fn lock(token: &std::sync::Mutex<CancellationToken>) -> std::sync::MutexGuard<'_, CancellationToken> {
    token.lock().expect("a token lock is never poisoned")
}

/// Cancels the current token and puts a fresh one in its place.
fn renew(slot: &std::sync::Mutex<CancellationToken>) {
    let mut token = lock(slot);
    token.cancel();
    *token = CancellationToken::new();
}

enum Control {
    DropConnections,
    Stop(oneshot::Sender<()>),
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A loopback HTTP (and websocket) server for one simulator, whose connections can be cut and which
/// can be restarted on the same port.
pub struct SimServer {
    addr: SocketAddr,
    app: axum::Router,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl SimServer {
    /// Listens on `127.0.0.1:0`.
    pub async fn start(app: axum::Router) -> std::io::Result<Self> {
        Self::start_at("127.0.0.1:0".parse().expect("a valid address"), app).await
    }

    /// Serves on a listener already bound (by a simulator that needed its address to build its routes).
    pub fn from_listener(listener: TcpListener, app: axum::Router) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (control, task) = spawn(listener, app.clone());
        Ok(Self { addr, app, control, task })
    }

    /// Listens on `addr`.
    pub async fn start_at(addr: SocketAddr, app: axum::Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (control, task) = spawn(listener, app.clone());
        Ok(Self { addr, app, control, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection; the server keeps listening.
    pub fn drop_connections(&self) {
        let _ = self.control.send(Control::DropConnections);
    }

    /// Stops listening and closes every connection, then listens again on the same port: the server
    /// "went down" and came back.
    pub async fn restart(&mut self, down_for: std::time::Duration) -> std::io::Result<()> {
        self.stop().await;
        tokio::time::sleep(down_for).await;
        let listener = TcpListener::bind(self.addr).await?;
        let (control, task) = spawn(listener, self.app.clone());
        self.control = control;
        self.task = task;
        Ok(())
    }

    pub async fn stop(&mut self) {
        let (done, stopped) = oneshot::channel();
        if self.control.send(Control::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spawn(listener: TcpListener, app: axum::Router) -> (mpsc::UnboundedSender<Control>, JoinHandle<()>) {
    let (control, mut commands) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(app.clone());
                    connections.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    });
                }
                command = commands.recv() => match command {
                    Some(Control::DropConnections) => connections.abort_all(),
                    Some(Control::Stop(done)) => {
                        connections.abort_all();
                        drop(listener);
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    (control, task)
}
