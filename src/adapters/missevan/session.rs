//! The account's cookies: `FM_SESS` (+ `FM_SESS.sig`) is a session of about three days that
//! `GET /api/user/info` hands out; `token` is the login. A refused session is refreshed once before the
//! login is declared refused.

use reqwest::header::{COOKIE, HeaderValue, SET_COOKIE};
use tokio::sync::Mutex;
use tracing::{debug, info};

use super::config::MissevanAccount;
use super::wire::Answer;
use crate::adapters::SendFailure;
use crate::adapters::retry::describe;

const SESSION: &str = "FM_SESS";
const SESSION_SIG: &str = "FM_SESS.sig";

#[derive(Debug, Default)]
struct State {
    cookies: Vec<(String, String)>,
    user_id: Option<u64>,
    /// Bumped by every refresh, so that tasks refused at the same time refresh once.
    generation: u64,
}

pub struct Session {
    http: reqwest::Client,
    info_url: String,
    state: Mutex<State>,
}

/// The cookie header to send and the session generation it belongs to.
pub struct Cookies {
    pub header: HeaderValue,
    pub generation: u64,
}

impl Session {
    pub fn new(config: &MissevanAccount, http: reqwest::Client) -> Self {
        let cookies = parse_cookies(config.cookie.expose());
        let info_url = format!("{}/api/user/info", config.api_url.as_str().trim_end_matches('/'));
        Self { http, info_url, state: Mutex::new(State { cookies, ..State::default() }) }
    }

    pub async fn user_id(&self) -> Option<u64> {
        self.state.lock().await.user_id
    }

    /// The cookies, fetching a session first when none is configured.
    pub async fn cookies(&self) -> Result<Cookies, SendFailure> {
        let generation = {
            let state = self.state.lock().await;
            if has_session(&state.cookies) {
                return Ok(cookie_header(&state));
            }
            state.generation
        };
        self.refresh(generation).await?;
        Ok(cookie_header(&*self.state.lock().await))
    }

    /// Fetches a fresh session, unless another task already did since `seen` was handed out.
    pub async fn refresh(&self, seen: u64) -> Result<(), SendFailure> {
        let mut state = self.state.lock().await;
        if state.generation != seen {
            return Ok(());
        }
        state.cookies.retain(|(name, _)| name != SESSION && name != SESSION_SIG);
        let mut request = self.http.get(&self.info_url);
        if !state.cookies.is_empty() {
            request = request.header(COOKIE, sensitive(&join(&state.cookies)));
        }
        let response = request.send().await.map_err(|e| SendFailure::Transient { after: None, reason: describe(e) })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(SendFailure::Transient { after: None, reason: format!("user info answered {status}") });
        }
        if !status.is_success() {
            return Err(SendFailure::Fatal { reason: format!("the session was refused: user info answered {status}") });
        }
        for value in response.headers().get_all(SET_COOKIE) {
            let Some((name, value)) = value.to_str().ok().and_then(set_cookie_pair) else { continue };
            if name == SESSION || name == SESSION_SIG {
                state.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        let answer: Answer = crate::adapters::retry::read_json(response, super::MAX_ANSWER).await.unwrap_or_default();
        state.user_id = user_id_of(&answer.info).or(state.user_id);
        state.generation += 1;
        if !has_session(&state.cookies) {
            return Err(SendFailure::Transient { after: None, reason: "user info set no session cookie".into() });
        }
        match state.user_id {
            Some(id) => info!(user_id = id, "Missevan session obtained."),
            None => debug!("Missevan guest session obtained (no login token: receive only)."),
        }
        Ok(())
    }
}

fn has_session(cookies: &[(String, String)]) -> bool {
    cookies.iter().any(|(name, _)| name == SESSION)
}

fn cookie_header(state: &State) -> Cookies {
    Cookies { header: sensitive(&join(&state.cookies)), generation: state.generation }
}

fn sensitive(text: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn join(cookies: &[(String, String)]) -> String {
    cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

/// `a=1; b=2` → pairs, in order.
pub fn parse_cookies(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| !name.trim().is_empty())
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The `name=value` of a `Set-Cookie` header (its attributes dropped).
fn set_cookie_pair(header: &str) -> Option<(&str, &str)> {
    let pair = header.split(';').next()?;
    let (name, value) = pair.split_once('=')?;
    Some((name.trim(), value.trim()))
}

/// The logged-in user's id in a user-info answer (`info.user.user_id`, `info.user.id` or `info.id`).
fn user_id_of(info: &serde_json::Value) -> Option<u64> {
    let user = &info["user"];
    [&user["user_id"], &user["id"], &info["id"]]
        .into_iter()
        .find_map(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse_from_the_seed_form() {
        let cookies = parse_cookies(
            "FM_SESS=20230304|07dm4m7r33k8469kx2x2ngrl7; FM_SESS.sig=QkwDQIwaO5uWsseEHwZmFlNF15w; token=6402a|afa3|1677894515|cd4e",
        );
        let names: Vec<&str> = cookies.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["FM_SESS", "FM_SESS.sig", "token"]);
        assert_eq!(cookies[2].1, "6402a|afa3|1677894515|cd4e");
        assert!(has_session(&cookies));
        assert_eq!(set_cookie_pair("FM_SESS=abc; Path=/; HttpOnly"), Some(("FM_SESS", "abc")));
    }

    #[test]
    fn user_ids_are_found_where_the_answers_put_them() {
        assert_eq!(user_id_of(&serde_json::json!({"user": {"user_id": 3414815}})), Some(3414815));
        assert_eq!(user_id_of(&serde_json::json!({"id": 3414815, "user": {"id": 3414815}})), Some(3414815));
        assert_eq!(user_id_of(&serde_json::json!({"user": null})), None);
    }
}
