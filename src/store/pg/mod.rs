//! The PostgreSQL store (`general.store = "postgres://…"`): the same data as the SQLite store — outbox, id map,
//! cursors, dead letters — in a database several instances can share.
//!
//! Everything the store does runs on one thread of its own with its own runtime (as the SQLite store's
//! writer does): a writer connection that gathers the router's operations into transactions (the same
//! batching as SQLite's, each batch a few pipelined statements over arrays), and a reader connection for the id
//! map's lookups of groups no longer in memory. The router's calls never wait for the database but those
//! lookups, which wait for one round trip as SQLite's wait for one page read.
//!
//! Keys and group ids are given per run: each start takes a number from the `chatbridge_runs` sequence and
//! gives keys and ids from `run << 40` up, so instances sharing the database never give the same one.

mod admin;
mod reader;
pub mod schema;
#[doc(hidden)]
pub mod testing;
mod writer;

pub use admin::{SchemaState, dead_letters, migrate, queues, requeue, status};
pub use reader::PgReader;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tracing::error;

use super::{Closing, Op, Opened, Pending, StoreError, StoreEvent, StoreSettings};
use crate::model::{Event, RemoteId, RoomAddr};
use crate::settings::Secret;

/// How long a connection attempt may take when the connection string sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is, as `general.store` names it, parsed (the string itself is a secret: it may carry
/// a password).
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
}

impl PgTarget {
    pub fn parse(url: &Secret) -> Result<Self, String> {
        let mut config: tokio_postgres::Config =
            url.expose().parse().map_err(|e| format!("`general.store` is not a PostgreSQL connection string ({e})"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("chatbridge");
        }
        config.keepalives_idle(Duration::from_secs(30));
        Ok(Self { config })
    }

    /// The server and database, without the credentials (for logs and errors).
    pub fn describe(&self) -> String {
        let host = self.config.get_hosts().first().map_or_else(
            || "localhost".to_owned(),
            |h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            },
        );
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres");
        format!("postgres://{host}:{port}/{db}")
    }

    /// A connection, TLS unless the string says `sslmode=disable` (`prefer`, the default, falls back to a
    /// plain connection where the server offers no TLS). Its driver runs on the calling runtime.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        if self.config.get_ssl_mode() == SslMode::Disable {
            let (client, connection) = self.config.connect(NoTls).await?;
            tokio::spawn(async move { drop(connection.await) });
            return Ok(client);
        }
        let (client, connection) = self.config.connect(tls()).await?;
        tokio::spawn(async move { drop(connection.await) });
        Ok(client)
    }
}

/// rustls with the system's roots (as the adapters' websockets use).
fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    crate::adapters::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Runs `work` with a connection on a thread and runtime of its own (the commands call this from anywhere,
/// inside a runtime or not).
pub fn blocking<T: Send + 'static>(
    target: &PgTarget,
    work: impl for<'c> FnOnce(&'c mut Client) -> futures_util::future::BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let target = target.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
            StoreError::Postgres { target: target.describe(), reason: format!("cannot start a runtime: {e}") }
        })?;
        runtime.block_on(async {
            let mut client = target.connect().await.map_err(|e| target.error(&e))?;
            work(&mut client).await
        })
    })
    .join()
    .unwrap_or_else(|_| Err(StoreError::Postgres { target: "postgres".into(), reason: "the worker panicked".into() }))
}

impl PgTarget {
    pub(super) fn error(&self, e: &tokio_postgres::Error) -> StoreError {
        StoreError::Postgres { target: self.describe(), reason: reason(e) }
    }
}

/// A PostgreSQL error as one line: the server's message where there is one.
pub(super) fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The PostgreSQL store's writing side (the router's persistence port).
pub struct PgStore {
    gathered: std::cell::RefCell<Vec<Op>>,
    ops: Option<mpsc::UnboundedSender<Vec<Op>>>,
    thread: Option<JoinHandle<Closing>>,
    /// This start's number (the prefix of its keys and group ids).
    run: i64,
}

impl PgStore {
    /// Connects, migrates, reads what the database holds, and starts the writer and the id-map reader.
    pub fn open(
        target: &PgTarget,
        settings: &StoreSettings,
        configured: impl Fn(&str, &str) -> bool + Send + 'static,
        notify: impl Fn(StoreEvent) + Send + 'static,
    ) -> Result<(Self, Opened, PgReader), StoreError> {
        let (ops, inputs) = mpsc::unbounded_channel();
        let (reads, requests) = mpsc::unbounded_channel();
        let (started, start) = std::sync::mpsc::sync_channel(1);
        let settings = settings.clone();
        let target = target.clone();
        let thread = std::thread::Builder::new()
            .name("chatbridge-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let reason = format!("cannot start a runtime: {e}");
                        let _ = started.send(Err(StoreError::Postgres { target: target.describe(), reason }));
                        return Closing::default();
                    }
                };
                runtime.block_on(async move {
                    let opening = async {
                        let mut client = target.connect().await.map_err(|e| target.error(&e))?;
                        schema::migrate(&mut client).await.map_err(|e| match e {
                            schema::MigrateError::Newer { found } => {
                                StoreError::PgNewer { target: target.describe(), found }
                            }
                            schema::MigrateError::Postgres(e) => target.error(&e),
                        })?;
                        let run: i64 = client
                            .query_one("SELECT nextval('chatbridge_runs')", &[])
                            .await
                            .map_err(|e| target.error(&e))?
                            .get(0);
                        let opened = schema::startup(&mut client, run, &settings, &configured)
                            .await
                            .map_err(|e| target.error(&e))?;
                        let reader = target.connect().await.map_err(|e| target.error(&e))?;
                        Ok::<_, StoreError>((client, reader, run, opened))
                    };
                    let (client, reader, run, opened) = match opening.await {
                        Ok(done) => done,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return Closing::default();
                        }
                    };
                    let _ = started.send(Ok((run, opened)));
                    tokio::spawn(reader::serve(target.clone(), reader, requests));
                    writer::write(writer::Writer::new(target, client, run, settings), inputs, notify).await
                })
            })
            .map_err(|e| StoreError::Postgres { target: "postgres".into(), reason: e.to_string() })?;
        let (run, opened) = match start.recv() {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StoreError::Postgres {
                    target: "postgres".into(),
                    reason: "the store's thread stopped".into(),
                });
            }
        };
        let store = Self { gathered: Default::default(), ops: Some(ops), thread: Some(thread), run };
        Ok((store, opened, PgReader::new(reads)))
    }

    /// This start's number in `chatbridge_runs`.
    pub fn run(&self) -> i64 {
        self.run
    }

    fn send(&self, op: Op) {
        self.gathered.borrow_mut().push(op);
    }

    fn finish(&mut self) -> Closing {
        crate::router::port::Persist::end(self);
        self.ops = None;
        self.thread.take().and_then(|thread| thread.join().ok()).unwrap_or_default()
    }
}

impl crate::router::port::Persist for PgStore {
    fn durable(&self) -> bool {
        true
    }

    fn cursor(&self, room: &RoomAddr, cursor: &crate::model::Cursor) {
        self.send(Op::Cursor { room: room.to_string(), cursor: cursor.as_str().to_owned() });
    }

    fn group(&self, id: u64, origin: Option<(&RoomAddr, &RemoteId)>, snippet: &crate::router::idmap::Snippet) {
        let origin = origin.map(|(room, id)| (room.clone(), id.clone()));
        let (sender, text, time) = (snippet.sender.clone(), snippet.text.clone(), snippet.time.0);
        self.send(Op::Group { id, origin, sender, text, time });
    }

    fn put(&self, key: u64, room: &RoomAddr, bridge: &str, event: &Arc<Event>, ids: &[RemoteId], group: Option<u64>) {
        let row = Pending::Event { room: room.clone(), event: Arc::clone(event), client_ids: ids.to_vec(), group };
        self.send(Op::Put { key, bridge: bridge.to_owned(), row });
    }

    fn delete(&self, key: u64) {
        self.send(Op::Delete { key });
    }

    fn dead_letter(&self, key: u64, reason: String) {
        self.send(Op::DeadLetter { key, reason });
    }

    fn copy(&self, group: u64, room: &RoomAddr, ids: &[RemoteId]) {
        self.send(Op::Copy { group, room: room.clone(), ids: ids.to_vec() });
    }

    fn load(&self, room: &RoomAddr, after: u64, limit: usize) {
        self.send(Op::Load { room: room.clone(), after, limit });
    }

    fn end(&self) {
        let ops = std::mem::take(&mut *self.gathered.borrow_mut());
        if ops.is_empty() {
            return;
        }
        if let Some(sender) = &self.ops
            && sender.send(ops).is_err()
        {
            error!("The PostgreSQL store's writer has stopped: state is no longer saved.");
        }
    }

    fn close(mut self: Box<Self>) -> Closing {
        self.finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests;
