//! Reaching the database: the connection string parsed (it is a secret), connections with or without TLS, their
//! drivers (which pass on `LISTEN` notifications), the commands' one-off connections, and errors as one line
//! without the credentials.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use crate::settings::{Secret, libpq_options};
use crate::store::StoreError;

/// How long a connection attempt may take when the connection string sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is, as `general.store` names it, parsed (the string itself is a secret: it may carry
/// a password).
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    /// The certificates `sslrootcert` names, trusted in place of the system's roots.
    roots: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl PgTarget {
    /// Parses a connection string, in URL or `key=value` form. Beyond what `tokio-postgres` reads, it takes
    /// libpq's `sslrootcert=<file>` (PEM certificates to trust in place of the system's roots, read now so a
    /// missing file is a configuration error) and `sslmode=verify-ca|verify-full`: the certificate and the host
    /// name are always verified once TLS is on, so both mean `require`.
    pub fn parse(url: &Secret) -> Result<Self, String> {
        let (source, root_file) = libpq_options(url.expose());
        let mut config: tokio_postgres::Config =
            source.parse().map_err(|e| format!("`general.store` is not a PostgreSQL connection string ({e})"))?;
        let roots = match root_file {
            Some(path) => {
                if config.get_ssl_mode() == SslMode::Disable {
                    return Err("`general.store` names an `sslrootcert` but says `sslmode=disable`".into());
                }
                config.ssl_mode(SslMode::Require);
                Some(Arc::new(read_roots(&path)?))
            }
            None => None,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("chatbridge");
        }
        config.keepalives_idle(Duration::from_secs(30));
        Ok(Self { config, roots })
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
        self.connect_with(None).await
    }

    /// [`PgTarget::connect`], handing what the server notifies (`LISTEN`) to `notifications`.
    pub(super) async fn connect_with(
        &self,
        notifications: Option<mpsc::UnboundedSender<tokio_postgres::Notification>>,
    ) -> Result<Client, tokio_postgres::Error> {
        if self.config.get_ssl_mode() == SslMode::Disable {
            let (client, connection) = self.config.connect(NoTls).await?;
            drive(connection, notifications);
            return Ok(client);
        }
        let (client, connection) = self.config.connect(tls(self.roots.as_deref())).await?;
        drive(connection, notifications);
        Ok(client)
    }
}

/// Runs a connection's driver on the current runtime, passing on its notifications.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notifications: Option<mpsc::UnboundedSender<tokio_postgres::Notification>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::StreamExt;
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if let Some(to) = &notifications {
                        let _ = to.send(n);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
}

/// The certificates of a PEM file, or why there are none.
fn read_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("`sslrootcert` {shown} cannot be read: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`sslrootcert` {shown} is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("`sslrootcert` {shown} holds no certificate"));
    }
    Ok(certs)
}

/// rustls with the roots `sslrootcert` named, else the system's (as the adapters' websockets use).
fn tls(named: Option<&Vec<CertificateDer<'static>>>) -> tokio_postgres_rustls::MakeRustlsConnect {
    crate::adapters::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match named {
        Some(certs) => {
            for cert in certs {
                let _ = roots.add(cert.clone());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
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
