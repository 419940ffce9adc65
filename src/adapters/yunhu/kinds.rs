//! The content types beyond text and media (issue #33 §2), read into segments a fan on another platform can read:
//! a post (5: its title in bold, then its text, Markdown kept), a form (5: its fields as `label: value` lines), the
//! buttons under a message (their labels), a call (13: its text and status). `buttons` and `form` are JSON strings
//! whose shapes the seeds leave to capture (seed 004: "具体内容自己抓包看吧"); the bot API documents buttons as rows of
//! `{text, actionType, url|value}`. Whatever their shape, only their strings are read, bounded: a hostile server's
//! form cannot make a long line.

use serde_json::Value;

use super::proto::MsgContent;
use crate::model::{Segment, Style, rich};

/// Lines of a form kept; characters of one line.
const FORM_LINES: usize = 20;
const LINE_CHARS: usize = 200;

/// The post: its title in bold, then its content (Markdown read for its formatting when `post_content_type` says 2).
pub fn post(c: &MsgContent) -> Vec<Segment> {
    let mut out = Vec::new();
    if !c.post_title.trim().is_empty() {
        out.push(Segment::Styled { text: c.post_title.trim().to_owned(), style: Style::BOLD });
    }
    if !c.post_content.is_empty() {
        if !out.is_empty() {
            out.push(Segment::Text("\n".to_owned()));
        }
        match c.post_content_type.as_str() {
            "2" | "markdown" => out.extend(rich::markdown::parse(&c.post_content).0),
            _ => out.push(Segment::Text(c.post_content.clone())),
        }
    }
    out
}

/// A form's fields as `label: value` lines (`[form]` first), read from whatever JSON it is.
pub fn form(c: &MsgContent) -> Vec<Segment> {
    let mut lines = Vec::new();
    match serde_json::from_str::<Value>(&c.form) {
        Ok(value) => fields(&value, &mut lines),
        Err(_) if !c.form.trim().is_empty() => lines.push(cut(c.form.trim())),
        Err(_) => {}
    }
    let mut text = String::from("[form]");
    for line in lines.iter().take(FORM_LINES) {
        text.push('\n');
        text.push_str(line);
    }
    if lines.len() > FORM_LINES {
        text.push_str(&format!("\n… {} more", lines.len() - FORM_LINES));
    }
    vec![Segment::Text(text)]
}

/// The labels of the buttons under a message, as a line: `[buttons: A | B]`.
pub fn buttons(c: &MsgContent) -> Option<String> {
    let value: Value = serde_json::from_str(&c.buttons).ok()?;
    let mut labels = Vec::new();
    labels_of(&value, &mut labels);
    labels.truncate(12);
    (!labels.is_empty()).then(|| format!("[buttons: {}]", labels.join(" | ")))
}

/// A call: its text and its status, as the client shows them.
pub fn call(c: &MsgContent) -> Vec<Segment> {
    let parts: Vec<&str> =
        [c.call_text.trim(), c.call_status_text.trim()].into_iter().filter(|t| !t.is_empty()).collect();
    if parts.is_empty() {
        return Vec::new();
    }
    vec![Segment::Text(format!("[call] {}", parts.join(" — ")))]
}

fn cut(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(LINE_CHARS).collect()
}

/// `label: value` for every object that names a field (`label`, `title` or `name`) and gives it a value; strings
/// elsewhere as they are.
fn fields(value: &Value, out: &mut Vec<String>) {
    if out.len() > FORM_LINES * 4 {
        return;
    }
    match value {
        Value::Object(map) => {
            let label = ["label", "title", "name"].iter().find_map(|k| map.get(*k).and_then(Value::as_str));
            let answer = ["value", "default", "text", "content"].iter().find_map(|k| map.get(*k)).and_then(scalar);
            match (label, answer) {
                (Some(label), Some(answer)) => out.push(cut(&format!("{label}: {answer}"))),
                (Some(label), None) => out.push(cut(label)),
                _ => {}
            }
            for (key, inner) in map {
                if matches!(inner, Value::Object(_) | Value::Array(_)) {
                    fields(inner, out);
                } else if label.is_none()
                    && !["id", "type"].contains(&key.as_str())
                    && let Some(text) = scalar(inner)
                {
                    out.push(cut(&format!("{key}: {text}")));
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| fields(item, out)),
        Value::String(text) if !text.trim().is_empty() => out.push(cut(text.trim())),
        _ => {}
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn labels_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| labels_of(item, out)),
        Value::Object(map) => {
            if let Some(text) = map.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) {
                out.push(text.trim().chars().take(40).collect());
            }
        }
        _ => {}
    }
}
