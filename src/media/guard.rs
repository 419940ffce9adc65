//! The media fetcher's guard against server-side request forgery: a media URL comes from a platform's message, so
//! whoever sends one chooses where the daemon connects. Names are resolved first and an address that is not public
//! (loopback, private, link-local, multicast, unspecified, shared, documentation; IPv4, IPv6 and IPv4-mapped IPv6) is
//! refused, on the first request and on every redirect; the connection goes to the address that was checked (the
//! client's resolver is this one: there is no second lookup). Hosts the operator trusts — the account's own
//! servers, `[media] allow_hosts` — are fetched from whatever their address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address on the internet at large (the only kind a media URL may lead to).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        // 0.0.0.0/8 ("this network"), 100.64.0.0/10 (shared, carrier-grade NAT), 192.0.0.0/24 (protocol
        // assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4 (reserved).
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 (unique local), fe80::/10 (link-local), 2001:db8::/32 (documentation), 64:ff9b:1::/48 (local
        // translation), ::/96 (IPv4-compatible, deprecated).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b && ip.segments()[2] == 0x0001)
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

/// The hosts fetched from whatever their address: the accounts' own servers and `[media] allow_hosts`.
#[derive(Clone, Debug, Default)]
pub struct Trusted(Arc<Vec<String>>);

impl Trusted {
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        Self(Arc::new(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect()))
    }

    pub fn contains(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.0.contains(&host)
    }
}

/// Why a media URL is not fetched.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an http or https URL")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} is not a public address")]
    Address(IpAddr),
}

/// Whether a URL may be requested as it stands: its scheme, and its host when that is an address (a name is the
/// resolver's to judge). Checked for the first request and for every redirect.
pub fn check_url(url: &Url, trusted: &Trusted) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    let host = url.host_str().ok_or(Refused::NoHost)?;
    if trusted.contains(host) {
        return Ok(());
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Err(Refused::Address(ip)),
        _ => Ok(()),
    }
}

/// The resolver of the media client: the system's lookup, then only the public addresses (all of them for a
/// trusted host). A name with none is an error: nothing is connected to.
#[derive(Clone, Debug)]
struct Guarded {
    trusted: Trusted,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let trusted = self.trusted.contains(name.as_str());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| trusted || is_public(a.ip())).collect();
            if allowed.is_empty() {
                let first = found.first().map_or_else(|| "no address".to_owned(), |a| a.ip().to_string());
                return Err(format!("{host} resolves to {first}, which is not a public address").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The most redirects a media fetch follows.
const MAX_REDIRECTS: usize = 5;

/// The media client with its trusted hosts: every request goes through [`Guard::get`], which checks the URL
/// itself before the client's resolver and redirect policy check the rest.
#[derive(Clone, Debug)]
pub struct Guard {
    client: reqwest::Client,
    trusted: Trusted,
}

/// Why a fetch did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// A redirect was refused (to a refused URL, or one too many).
    #[error("{0}")]
    Redirect(String),
    /// The name resolves to no public address.
    #[error("{0}")]
    NotPublic(String),
    #[error("timed out")]
    TimedOut,
    /// Anything else: the connection failed.
    #[error("{0}")]
    Request(String),
}

impl Guard {
    pub fn new(trusted: Trusted, connect: Duration, total: Duration) -> Self {
        Self { client: client(trusted.clone(), connect, total), trusted }
    }

    /// `GET url`, when the URL may be fetched. The query string is left out of the error (it may hold a token).
    pub async fn get(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        self.send(url, |client| client.get(url.clone())).await
    }

    /// `POST url` with `body` and `headers`, under the same rules (the state webhook).
    pub async fn post(
        &self,
        url: &Url,
        body: Vec<u8>,
        headers: reqwest::header::HeaderMap,
    ) -> Result<reqwest::Response, FetchError> {
        self.send(url, |client| client.post(url.clone()).headers(headers).body(body)).await
    }

    async fn send(
        &self,
        url: &Url,
        build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FetchError> {
        check_url(url, &self.trusted)?;
        build(&self.client).send().await.map_err(|e| {
            // Said without the URL: its query string may hold a token.
            let (redirect, timeout) = (e.is_redirect(), e.is_timeout());
            let e = e.without_url();
            let mut said = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                said = format!("{said}: {cause}");
                source = cause.source();
            }
            if redirect {
                FetchError::Redirect(said)
            } else if timeout {
                FetchError::TimedOut
            } else if said.contains("not a public address") {
                FetchError::NotPublic(said)
            } else {
                FetchError::Request(said)
            }
        })
    }
}

/// An HTTP client for media: the guarded resolver, every redirect checked, no proxy, no cookies, a deadline to
/// connect and one for the whole request.
fn client(trusted: Trusted, connect: Duration, total: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let checking = trusted.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match check_url(attempt.url(), &checking) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(format!("a redirect to a refused URL: {refused}")),
        }
    });
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Guarded { trusted })
        .redirect(redirects)
        .connect_timeout(connect)
        .timeout(total)
        .user_agent(concat!("chatbridge/", env!("CARGO_PKG_VERSION"), " (media)"))
        .build()
        .expect("the TLS provider is installed and the client settings are static")
}

#[cfg(test)]
mod tests;
