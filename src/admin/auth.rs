//! Who may look and who may act (issue #32 §2). With `general.admin_token` set, the page and the admin API need it:
//! `Authorization: Bearer <token>`, or a session from the login form (a `Secure; HttpOnly; SameSite=Strict` cookie).
//! Every action is a POST; one made with the session cookie must carry the session's CSRF token and come from the
//! page's own origin. The token is compared in constant time; failed logins are throttled per address and counted.
//! Every answer carries a strict `Content-Security-Policy`, `X-Frame-Options: DENY` and `Referrer-Policy:
//! no-referrer`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, header};

/// Sessions kept at once (the oldest go first), and how long one lasts.
const SESSIONS: usize = 256;
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins an address may make in a window before it waits out the window.
const FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

pub const COOKIE: &str = "chatbridge_session";

/// How a request is authorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No `admin_token`: anyone who reaches the listener (on loopback, as `check` insists).
    Open,
    /// `Authorization: Bearer`: a script; no CSRF check (the browser never adds this header by itself).
    Bearer,
    /// The login's cookie, with its session's CSRF token.
    Session { csrf: String },
}

#[derive(Default)]
struct Sessions {
    /// id → (CSRF token, created).
    live: HashMap<String, (String, Instant)>,
    /// address → (failures, window start).
    failures: HashMap<IpAddr, (u32, Instant)>,
}

pub struct Auth {
    token: Option<String>,
    sessions: Mutex<Sessions>,
}

fn random() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn same(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl Auth {
    pub fn new(token: Option<String>) -> Self {
        Self { token, sessions: Mutex::default() }
    }

    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Who is asking, or `None` (401).
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let Some(token) = &self.token else { return Some(Caller::Open) };
        if let Some(bearer) =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
        {
            return same(bearer.trim(), token).then_some(Caller::Bearer);
        }
        let id = cookie(headers, COOKIE)?;
        let mut sessions = self.lock();
        let (csrf, created) = sessions.live.get(id)?.clone();
        if created.elapsed() > SESSION_TTL {
            sessions.live.remove(id);
            return None;
        }
        Some(Caller::Session { csrf })
    }

    /// A login with `offered` from `from`: the new session's cookie, `Err(true)` while the address is throttled,
    /// `Err(false)` for a wrong token.
    pub fn login(&self, offered: &str, from: IpAddr) -> Result<HeaderValue, bool> {
        let Some(token) = &self.token else { return Err(false) };
        let mut sessions = self.lock();
        let now = Instant::now();
        let failures = sessions.failures.entry(from).or_insert((0, now));
        if now.duration_since(failures.1) > FAILURE_WINDOW {
            *failures = (0, now);
        }
        if failures.0 >= FAILURES {
            return Err(true);
        }
        if !same(offered.trim(), token) {
            failures.0 += 1;
            return Err(false);
        }
        sessions.failures.remove(&from);
        if sessions.live.len() >= SESSIONS
            && let Some(oldest) = sessions.live.iter().min_by_key(|(_, (_, at))| *at).map(|(id, _)| id.clone())
        {
            sessions.live.remove(&oldest);
        }
        let id = random();
        sessions.live.insert(id.clone(), (random(), now));
        let value =
            format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_TTL.as_secs());
        HeaderValue::from_str(&value).map_err(|_| false)
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.lock().live.remove(id);
        }
    }
}

/// Whether an action (a POST) may go on: a session's must carry its CSRF token (`csrf`, from the form or the
/// `X-CSRF-Token` header) and come from the page's own origin.
pub fn action_allowed(caller: &Caller, method: &Method, headers: &HeaderMap, csrf: Option<&str>) -> bool {
    if !matches!(*method, Method::POST | Method::PUT | Method::DELETE) {
        return false;
    }
    match caller {
        Caller::Open | Caller::Bearer => same_origin(headers),
        Caller::Session { csrf: expected } => {
            let offered = csrf.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
            same_origin(headers) && offered.is_some_and(|offered| same(offered, expected))
        }
    }
}

/// A browser's request from another site is refused (`Sec-Fetch-Site`, else `Origin` against `Host`); a script
/// that sends neither is taken at its word.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let host = host.to_str().unwrap_or_default();
            origin.split_once("://").is_some_and(|(_, rest)| rest == host)
        }
        (Some(_), None) => false,
    }
}

/// The headers every answer of the page and the API carries.
pub fn harden(headers: &mut HeaderMap) {
    let policy = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; script-src 'self'; \
                  connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn a_session_needs_its_csrf_token_and_the_same_origin() {
        let auth = Auth::new(Some("t".repeat(20)));
        assert_eq!(auth.caller(&HeaderMap::new()), None);
        let cookie = auth.login(&"t".repeat(20), "127.0.0.1".parse().unwrap()).unwrap();
        let id = cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        let caller = auth.caller(&headers(&[("cookie", &id)])).expect("logged in");
        let Caller::Session { csrf } = &caller else { panic!() };
        let ours = headers(&[("origin", "http://h:1"), ("host", "h:1")]);
        assert!(action_allowed(&caller, &Method::POST, &ours, Some(csrf)));
        assert!(!action_allowed(&caller, &Method::POST, &ours, None), "no CSRF token");
        assert!(!action_allowed(&caller, &Method::POST, &ours, Some("forged")));
        let theirs = headers(&[("origin", "http://evil:1"), ("host", "h:1")]);
        assert!(!action_allowed(&caller, &Method::POST, &theirs, Some(csrf)), "another origin");
        let cross = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(!action_allowed(&Caller::Bearer, &Method::POST, &cross, None));
        assert!(!action_allowed(&caller, &Method::GET, &ours, Some(csrf)), "actions are POSTs, PUTs and DELETEs");
        auth.logout(&headers(&[("cookie", &id)]));
        assert_eq!(auth.caller(&headers(&[("cookie", &id)])), None);
    }

    #[test]
    fn wrong_tokens_are_throttled_per_address() {
        let auth = Auth::new(Some("t".repeat(20)));
        let from: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..FAILURES {
            assert_eq!(auth.login("wrong", from), Err(false));
        }
        assert_eq!(auth.login(&"t".repeat(20), from), Err(true), "even the right token waits out the window");
        assert!(auth.login(&"t".repeat(20), "10.1.2.4".parse().unwrap()).is_ok(), "another address is not held");
        let bearer = headers(&[("authorization", &format!("Bearer {}", "t".repeat(20)))]);
        assert_eq!(auth.caller(&bearer), Some(Caller::Bearer));
        assert_eq!(auth.caller(&headers(&[("authorization", "Bearer nope")])), None);
    }
}
