//! The status page: server-rendered HTML from the API's snapshot, readable without JavaScript (it refreshes itself
//! every 15 seconds with a `<meta>`), its buttons plain forms posting to the API with the session's CSRF token.

use std::fmt::Write as _;

use super::api::PREFIX;
use super::model::{AccountView, BridgeView, Snapshot};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f5f6f8}\
header{background:#1d232a;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}\
header h1{font-size:18px;margin:0}header span{opacity:.8}main{padding:16px 24px;display:grid;gap:16px}\
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px}h2{font-size:15px;margin:0 0 8px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}\
th{font-weight:600;color:#56606b;font-size:12px;text-transform:uppercase}.num{text-align:right;font-variant-numeric:tabular-nums}\
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}\
.connected{background:#d8f3dc;color:#1b5e20}.connecting,.elsewhere,.unheld{background:#e3e8ef;color:#37474f}\
.backing_off{background:#fff3cd;color:#7a5a00}.stopped{background:#f8d7da;color:#842029}\
.advice{color:#56606b;font-size:12px}.error{color:#842029}form{display:inline}button{font:inherit;padding:2px 10px;cursor:pointer}\
.muted{color:#8a939c}.refused{background:#f8d7da;padding:8px;border-radius:4px}\
.rooms td:nth-child(n+3):nth-child(-n+7){text-align:right;font-variant-numeric:tabular-nums}\
.bridge th{text-transform:none;font-size:14px;color:#1d232a;padding-top:14px}.bridge .muted{font-weight:400}\
.chart{vertical-align:middle;background:#f5f6f8}.chart path{stroke:#3b7dd8;stroke-width:.8}";

fn esc(text: &str) -> String {
    htmlize::escape_attribute(text).into_owned()
}

fn time(ms: i64) -> String {
    if ms <= 0 {
        return "—".to_owned();
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    humantime::format_rfc3339_seconds(at).to_string().replace('T', " ").trim_end_matches('Z').to_owned() + " UTC"
}

fn duration(ms: u64) -> String {
    if ms == 0 {
        return "—".to_owned();
    }
    humantime::format_duration(std::time::Duration::from_secs(ms.div_ceil(1000))).to_string()
}

fn head(out: &mut String, title: &str, refresh: bool) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">{}<title>{}</title><style>{STYLE}</style></head><body>",
        if refresh { "<meta http-equiv=\"refresh\" content=\"15\">" } else { "" },
        esc(title)
    );
}

/// The login form (`message`: why the last attempt failed).
pub fn login(message: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, "chatbridge — log in", false);
    out.push_str("<header><h1>chatbridge</h1></header><main><section><h2>Log in</h2>");
    if let Some(message) = message {
        let _ = write!(out, "<p class=\"refused\">{}</p>", esc(message));
    }
    out.push_str(
        "<form method=\"post\" action=\"/login\"><label>Admin token <input type=\"password\" name=\"token\" \
         autocomplete=\"current-password\" autofocus required></label> <button type=\"submit\">Log in</button></form>\
         </section></main></body></html>",
    );
    out
}

fn account_row(out: &mut String, a: &AccountView, instances: bool) {
    let _ = write!(
        out,
        "<tr data-account=\"{id}\"><td>{id}</td><td>{platform}</td><td><span class=\"state {state}\">{state_text}</span></td>\
         <td>{since}</td><td class=\"num\">{hour} in the last hour; {reconnects} in all</td>",
        id = esc(&a.id),
        platform = a.platform,
        state = a.state,
        state_text = a.state.replace('_', " "),
        since = time(a.since_ms),
        hour = a.reconnects_last_hour,
        reconnects = a.reconnects,
    );
    if instances {
        let _ = write!(out, "<td>{}</td>", a.instance.as_deref().map_or_else(|| "none".to_owned(), esc));
    }
    out.push_str("<td>");
    if let Some(error) = &a.error {
        let _ = write!(out, "<span class=\"error\">{}</span>", esc(error));
    }
    if let Some(advice) = a.advice {
        let _ = write!(out, "<div class=\"advice\">{}</div>", esc(advice));
    }
    out.push_str("</td></tr>");
}

/// How long ago `ms` was, to the second (a dash for never).
fn ago(ms: Option<i64>, now: i64) -> String {
    match ms {
        Some(ms) => format!(
            "{} ago",
            humantime::format_duration(std::time::Duration::from_secs(((now - ms).max(0) / 1000) as u64))
        ),
        None => "—".to_owned(),
    }
}

/// The bridges and their rooms in one table: a heading row per bridge (its picture and its pause button), then a
/// row per room. Rows are kept lean — a page of 1,000 rooms stays light (docs/performance.md, "The status page"):
/// cells without end tags, numbers right-aligned by the table's style, and every pause button posting through the
/// page's one pause form and one resume form.
fn bridges(out: &mut String, bridges: &[BridgeView], csrf: Option<&str>) {
    let csrf_field =
        csrf.map(|c| format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(c))).unwrap_or_default();
    let _ = write!(
        out,
        "<form id=\"p\" method=\"post\" action=\"{PREFIX}/pause\">{csrf_field}</form><form id=\"r\" method=\"post\" action=\"{PREFIX}/resume\">{csrf_field}</form>"
    );
    out.push_str(
        "<table class=\"rooms\"><tr><th>room<th>direction<th>queued<th>lag<th>in<th>out<th>dead letters<th>last in<th>last out<th>now<th></tr>",
    );
    let now = crate::model::Time::now().0;
    for bridge in bridges {
        let name = esc(&bridge.name);
        let (form, label) = if bridge.paused { ("r", "Resume the bridge") } else { ("p", "Pause the bridge") };
        let _ = write!(
            out,
            "<tr class=\"bridge\"><th colspan=\"11\">{name}{} <button form=\"{form}\" name=\"bridge\" value=\"{name}\" data-bridge=\"{name}\">{label}</button> ",
            if bridge.paused { " <span class=\"state backing_off\">paused</span>" } else { "" }
        );
        chart(out, &bridge.per_minute);
        out.push_str("</tr>");
        for room in &bridge.rooms {
            let state = if room.paused {
                "paused".to_owned()
            } else if room.waiting_on_limit {
                "waiting on the send limit".to_owned()
            } else if let Some(online) = room.online {
                format!("{online} watching")
            } else {
                String::new()
            };
            let r = esc(&room.room);
            let _ = write!(
                out,
                "<tr><td>{r}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{}<td>{state}<td>",
                room.direction,
                room.queued,
                duration(room.lag_ms),
                room.received,
                room.relayed,
                room.dead_lettered,
                ago(room.last_in_ms, now),
                ago(room.last_out_ms, now),
            );
            if !bridge.paused {
                let (form, label) = if room.paused { ("r", "Resume") } else { ("p", "Pause") };
                let _ = write!(out, "<button form=\"{form}\" name=\"room\" value=\"{r}\">{label}</button>");
            }
            out.push_str("</tr>");
        }
    }
    out.push_str("</table>");
}

/// The dead letters shown on the page, newest first; the API lists them all.
pub const LETTERS_SHOWN: usize = 100;

/// A button posting `key` to a dead letters' action, through the page's one form for it.
fn button(out: &mut String, action: &str, key: u64, label: &str) {
    let _ = write!(
        out,
        "<button form=\"{action}\" name=\"key\" value=\"{key}\" data-action=\"{action}\" data-key=\"{key}\">{label}</button> "
    );
}

/// The dead letters, the newest [`LETTERS_SHOWN`], each with its requeue and drop buttons.
fn letters(out: &mut String, s: &Snapshot, csrf: Option<&str>) {
    if let Some(error) = &s.dead_letters_error {
        let _ = write!(out, "<p class=\"muted\">{}</p>", esc(error));
        return;
    }
    if s.dead_letters.is_empty() {
        out.push_str("<p class=\"muted\">None: nothing was given up.</p>");
        return;
    }
    let csrf_field =
        csrf.map(|c| format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(c))).unwrap_or_default();
    for action in ["requeue", "drop"] {
        let _ = write!(
            out,
            "<form id=\"{action}\" method=\"post\" action=\"{PREFIX}/dead-letters/{action}\">{csrf_field}</form>"
        );
    }
    if s.dead_letters.len() > LETTERS_SHOWN {
        let _ = write!(
            out,
            "<p>The newest {LETTERS_SHOWN} of {}; <code>GET {PREFIX}/dead-letters</code> or <code>chatbridge deadletters list</code> lists them all.</p>",
            s.dead_letters.len()
        );
    }
    out.push_str("<table><tr><th>key<th>given up<th>to<th>message<th>reason<th></tr>");
    for letter in s.dead_letters.iter().take(LETTERS_SHOWN) {
        let _ = write!(
            out,
            "<tr data-letter=\"{}\"><td class=\"num\">{}<td>{}<td>{} <span class=\"muted\">[{}]</span><td>{}<td>{}<td>",
            letter.key,
            letter.key,
            time(letter.failed_at_ms),
            esc(&letter.room),
            esc(&letter.bridge),
            esc(&letter.summary),
            esc(&letter.reason)
        );
        if letter.requeued {
            out.push_str("<span class=\"muted\">marked to be requeued at the next start</span> ");
        } else {
            button(out, "requeue", letter.key, "Requeue");
        }
        button(out, "drop", letter.key, "Drop");
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The whole page.
pub fn render(s: &Snapshot, csrf: Option<&str>, logged_in: bool) -> String {
    let mut out = String::with_capacity(16 << 10);
    head(&mut out, "chatbridge — status", true);
    let _ = write!(
        out,
        "<header><h1>chatbridge</h1><span>{} ({})</span><span>up {}</span>{}",
        esc(s.version),
        esc(s.commit),
        duration(s.uptime_s * 1000),
        s.instance.as_deref().map(|i| format!("<span>instance {}</span>", esc(i))).unwrap_or_default()
    );
    if let Some(file) = &s.config_file {
        let _ = write!(out, "<span>{}</span>", esc(file));
    }
    if logged_in {
        out.push_str("<form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form>");
    }
    out.push_str("</header><main>");
    if let Some(reload) = &s.last_reload {
        out.push_str("<section><h2>Last reload</h2>");
        if reload.applied {
            let _ = write!(out, "<p>Applied at {}.</p>", time(reload.at_ms));
        } else {
            let _ = write!(
                out,
                "<div class=\"refused\"><p>Refused at {}; the configuration before it runs on:</p><ul>",
                time(reload.at_ms)
            );
            for error in &reload.errors {
                let _ = write!(out, "<li>{}</li>", esc(error));
            }
            out.push_str("</ul></div>");
        }
        out.push_str("</section>");
    }
    let instances = s.accounts.iter().any(|a| a.instance.is_some()) || s.instance.is_some();
    let _ = write!(
        out,
        "<section id=\"accounts\"><h2>Accounts</h2><table><tr><th>account</th><th>platform</th><th>state</th><th>since</th><th class=\"num\">reconnects</th>{}<th>last error</th></tr>",
        if instances { "<th>instance</th>" } else { "" }
    );
    for account in &s.accounts {
        account_row(&mut out, account, instances);
    }
    out.push_str("</table></section><section id=\"bridges\"><h2>Bridges</h2>");
    bridges(&mut out, &s.bridges, csrf);
    out.push_str("</section><section id=\"dead-letters\"><h2>Dead letters</h2>");
    letters(&mut out, s, csrf);
    out.push_str("</section><section id=\"warnings\"><h2>Recent warnings and errors</h2>");
    if s.warnings.is_empty() {
        out.push_str("<p class=\"muted\">None since the daemon started.</p>");
    } else {
        out.push_str("<table><tr><th>when</th><th>level</th><th>where</th><th>what</th></tr>");
        for entry in &s.warnings {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                time(entry.at_ms),
                if entry.level == "error" { "error" } else { "" },
                entry.level,
                esc(&entry.target),
                esc(&entry.text)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section></main></body></html>");
    out
}

/// Messages relayed per minute over the last hour, as bars (inline SVG, drawn here: no script): one path, a stroke
/// a minute that saw any.
fn chart(out: &mut String, per_minute: &[u32]) {
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let total: u32 = per_minute.iter().sum();
    if total == 0 {
        out.push_str("<span class=\"muted\">nothing relayed in the last hour</span>");
        return;
    }
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 60 10\" width=\"240\" height=\"32\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{total} messages relayed in the last hour\"><path d=\""
    );
    // A stroke per minute that saw any (absolute moves: the repeated `M… 10v-` compress best).
    for (m, count) in per_minute.iter().enumerate() {
        if *count > 0 {
            let height = (u64::from(*count) * 10).div_ceil(u64::from(max));
            let _ = write!(out, "M{m}.5 10v-{height}");
        }
    }
    let _ =
        write!(out, "\"/></svg> <span class=\"muted\">{total} relayed in the last hour; at most {max} a minute</span>");
}

/// The page as it goes to a browser that takes gzip (every browser does): the repeated markup of a large page
/// shrinks several times over, at a fast level that costs a few milliseconds for 1,000 rooms.
pub fn gzip(html: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(html.len() / 4), flate2::Compression::fast());
    let _ = encoder.write_all(html.as_bytes());
    encoder.finish().unwrap_or_default()
}
