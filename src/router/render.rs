//! Rendering one event for one destination room, at send time: formats applied, replies, edits and
//! recalls resolved through the id map, and whatever the destination cannot show natively written as text.

use crate::config::{BridgeRoom, Replacement};
use crate::link::{OutMessage, Quote, SendAction};
use crate::model::{Capabilities, Content, Event, EventKind, Message, Segment, Style, push_plain};
use crate::router::directory::Directory;
use crate::router::idmap::IdStore;
use crate::router::split::split;
use crate::template::Vars;

/// The longest quoted text a reply carries when it is rendered as text.
const QUOTE_CHARS: usize = 80;

/// What to do for one queued event in one room.
#[derive(Debug, PartialEq, Eq)]
pub enum Rendered {
    Send(SendAction),
    /// Nothing to send (a recall the destination cannot show); the reason is logged at debug.
    Skip(&'static str),
}

/// Everything rendering needs besides the event.
pub struct Target<'a> {
    pub room: &'a BridgeRoom,
    /// The room the event came from, as a room of the same bridge (its `replace_text` and `replace_nick`).
    pub source: Option<&'a BridgeRoom>,
    pub bridge: &'a str,
    pub caps: Capabilities,
    /// The message's media, fetched into the store (empty without one).
    pub media: &'a super::media::Resolved,
}

pub fn render(event: &Event, target: &Target<'_>, ids: &mut dyn IdStore, directory: &Directory) -> Rendered {
    let origin = &event.origin.room;
    let sender = event.sender.as_ref().map_or("", |s| s.name.as_str());
    let sender = match target.source {
        Some(source) => Replacement::apply_all(&source.replace_nick, sender),
        None => std::borrow::Cow::Borrowed(sender),
    };
    let sender = if target.room.anti_ping { no_ping(&sender) } else { sender };
    let sender = sender.as_ref();
    let badges = event.sender.as_ref().and_then(|s| s.badges.as_deref());
    let level = badges.and_then(|b| b.level).map(|l| l.to_string()).unwrap_or_default();
    let vars = Vars {
        platform: origin.platform().as_str(),
        account: origin.account.name(),
        room: origin.room.as_str(),
        bridge: target.bridge,
        nick: sender,
        text: "",
        badge: badges.map_or("", |b| b.badge.as_str()),
        level: &level,
        medal: badges.map_or("", |b| b.medal.as_str()),
    };
    let copy_of = |ids: &mut dyn IdStore, target_id| {
        let group = ids.group_of(origin, target_id)?;
        ids.ids_in(group, &target.room.addr).filter(|ids| !ids.is_empty())
    };
    let action = match &event.kind {
        EventKind::Message(message) => {
            SendAction::Message(render_message(message, &vars, target, ids, directory, event))
        }
        EventKind::Edited { target: edited, content } => {
            let copy = copy_of(ids, edited).and_then(|ids| ids.into_iter().next());
            if copy.is_none() && target.caps.edit {
                // A message that went merged: its line in the merged copy rewritten.
                let line_target = Target { caps: Capabilities { separate_sender: false, ..target.caps }, ..*target };
                let message = Message { content: content.clone(), ..Message::default() };
                let line = render_message(&message, &vars, &line_target, ids, directory, event);
                let line = line.parts.iter().map(Content::to_plain_text).collect::<Vec<_>>().join(" ");
                if let Some(action) = merged_change(ids, origin, edited, Some(line), target) {
                    return Rendered::Send(action);
                }
            }
            match copy.filter(|_| target.caps.edit) {
                Some(copy) => {
                    let message = Message { content: content.clone(), ..Message::default() };
                    let out = render_message(&message, &vars, target, ids, directory, event);
                    SendAction::Edit { target: copy, message: out }
                }
                None => {
                    let mut content = content.clone();
                    content.0.push(Segment::Text(" (edited)".to_owned()));
                    let message = Message { content, ..Message::default() };
                    SendAction::Message(render_message(&message, &vars, target, ids, directory, event))
                }
            }
        }
        EventKind::Recalled { target: recalled } => {
            if let Some(action) = merged_change(ids, origin, recalled, None, target) {
                return Rendered::Send(action);
            }
            if !target.caps.recall {
                return Rendered::Skip("the destination cannot recall messages");
            }
            match copy_of(ids, recalled) {
                Some(copies) => SendAction::Recall { targets: copies },
                None => return Rendered::Skip("the recalled message has no known copy here"),
            }
        }
        EventKind::Joined => {
            super::lines::event_line(vec![Segment::Text(format!("{sender} joined"))], &vars, target, event)
        }
        EventKind::Left => {
            super::lines::event_line(vec![Segment::Text(format!("{sender} left"))], &vars, target, event)
        }
        EventKind::Gift { name, count, .. } => {
            // The gift's name in bold where the destination shows formatting (Yunhu's Markdown).
            let line = vec![
                Segment::Text(format!("{sender} sent {count} × ")),
                Segment::Styled { text: name.clone(), style: crate::model::Style::BOLD },
            ];
            super::lines::event_line(line, &vars, target, event)
        }
        EventKind::Notice { text } => super::lines::event_line(vec![Segment::Text(text.clone())], &vars, target, event),
        EventKind::Unsupported { .. } => return Rendered::Skip("unsupported events are not relayed"),
    };
    Rendered::Send(action)
}

/// An edit (`line`: its new line) or a recall (`None`) of a message that went to this room merged with others
/// (coalescing), where the platform edits: the merged copy edited to say what it says now — recalled once none of
/// its lines stands. Rendering it again (a retry) gives the same.
fn merged_change(
    ids: &mut dyn IdStore,
    origin: &crate::model::RoomAddr,
    changed: &crate::model::RemoteId,
    line: Option<String>,
    target: &Target<'_>,
) -> Option<SendAction> {
    if !target.caps.edit {
        return None;
    }
    let room = &target.room.addr;
    let group = ids.group_of(origin, changed)?;
    // A message goes to a room alone or merged: one with a merged copy there has no copy of its own.
    let merged = ids.merged_copy(group, room)?;
    let copy = ids.ids_in(merged, room).filter(|c| !c.is_empty())?;
    let lines = ids.merged_lines(merged)?;
    let (_, standing) = lines.lines.iter_mut().find(|(g, _)| *g == group)?;
    *standing = line;
    let text = lines.text();
    if text.is_empty() {
        return target.caps.recall.then_some(SendAction::Recall { targets: copy });
    }
    let sender = lines.sender.clone();
    let message = OutMessage { sender, parts: vec![Content::text(text)], ..OutMessage::default() };
    Some(SendAction::Edit { target: copy[0].clone(), message })
}

fn render_message(
    message: &Message,
    vars: &Vars<'_>,
    target: &Target<'_>,
    ids: &mut dyn IdStore,
    directory: &Directory,
    event: &Event,
) -> OutMessage {
    let caps = target.caps;
    let mut body: Vec<Segment> = Vec::with_capacity(message.content.0.len() + 2);
    let mut reply_to = None;
    let mut quote = None;
    let mut parent_missing = false;
    if let Some(reply) = &message.reply {
        let group = reply.target.as_ref().and_then(|t| ids.group_of(&event.origin.room, t));
        let room = &target.room.addr;
        // The copy there, or the merged copy that carries it (coalescing).
        let copy = group
            .and_then(|g| ids.ids_in(g, room).or_else(|| ids.merged_copy(g, room).and_then(|m| ids.ids_in(m, room))))
            .and_then(|c| c.into_iter().next());
        // The quoted message as the bridge saw it, when it did; else what the reply itself carries.
        let (sender, text, time) = match group.and_then(|g| ids.snippet(g)) {
            Some(snippet) => (snippet.sender, Some(snippet.text), Some(snippet.time)),
            None => (reply.quoted_sender.clone(), reply.quoted_text.clone(), reply.quoted_time),
        };
        // The quoted message's image: the store's link where it was fetched, else its own.
        let image = reply.quoted_image.as_ref().map(|url| match target.media.iter().find(|(u, _)| u == url) {
            Some((_, super::media::Resolution::Stored(file))) => {
                (file.url.clone(), format!("[image {}] {}", super::media::human_size(file.size), file.url))
            }
            _ => (url.clone(), format!("[image] {url}")),
        });
        if caps.reply {
            // The platform shows quotes itself: the copy's id where there is one, and what was quoted.
            parent_missing = copy.is_none() && reply.target.is_some();
            reply_to = copy;
            let image_url = image.map(|(url, _)| url);
            quote = match text {
                Some(text) => Some(Quote { sender, text, time, image: image_url }),
                None => image_url.map(|url| Quote { sender, text: String::new(), time, image: Some(url) }),
            };
        } else if text.is_some() || image.is_some() {
            let mut line = quote_line(sender.as_deref(), text.as_deref().unwrap_or_default());
            if let Some((_, written)) = image {
                line.pop();
                if !line.ends_with(' ') {
                    line.push(' ');
                }
                line.push_str(&written);
                line.push('\n');
            }
            body.push(Segment::Text(line));
        }
    }
    let rewrites = target.source.map_or(&[][..], |source| &source.replace_text[..]);
    let mut files = Vec::new();
    for segment in &message.content.0 {
        let rewrite = |text: &String| Replacement::apply_all(rewrites, text).into_owned();
        let rewritten;
        let segment = match segment {
            // An action where the platform cannot say so: its text in italics.
            Segment::Text(text) if message.action && !caps.sender_details => {
                rewritten = Segment::Styled { text: rewrite(text), style: Style::ITALIC };
                &rewritten
            }
            _ if rewrites.is_empty() => segment,
            Segment::Text(text) => {
                body.push(Segment::Text(rewrite(text)));
                continue;
            }
            Segment::Styled { text, style } if !style.code => {
                rewritten = Segment::Styled { text: rewrite(text), style: *style };
                &rewritten
            }
            Segment::Quote { text } => {
                rewritten = Segment::Quote { text: rewrite(text) };
                &rewritten
            }
            segment => segment,
        };
        let resolved = super::media::item(segment).and_then(|(url, _)| target.media.iter().find(|(u, _)| u == url));
        let out = match resolved {
            Some((_, resolution)) => {
                let out = super::media::render_item(segment, resolution, caps, &target.room.media_format);
                if let (super::media::Resolution::Stored(file), false) = (resolution, matches!(out, Segment::Text(_))) {
                    files.push(std::sync::Arc::clone(file));
                }
                out
            }
            None => native_or_text(segment, caps, directory, target),
        };
        // A code block or quote written as text begins a line of its own.
        let at_line_start = match body.last() {
            None => true,
            Some(Segment::Text(text)) => text.ends_with('\n'),
            Some(_) => false,
        };
        if !at_line_start
            && matches!(segment, Segment::CodeBlock { .. } | Segment::Quote { .. })
            && matches!(out, Segment::Text(_))
        {
            body.push(Segment::Text("\n".to_owned()));
        }
        body.push(out);
    }
    let (sender, content) = if caps.separate_sender {
        (Some(target.room.nick_format.render(vars)), body)
    } else {
        match target.room.format.render_around_text(vars) {
            Some((before, after)) => {
                let mut wrapped = Vec::with_capacity(body.len() + 2);
                wrapped.push(Segment::Text(before));
                wrapped.extend(body);
                wrapped.push(Segment::Text(after));
                (None, wrapped)
            }
            None => (None, vec![Segment::Text(target.room.format.render(vars))]),
        }
    };
    let origin = caps.sender_details.then(|| {
        let extra = with_files(message.extra.clone(), super::media::extra_files(&message.content.0, target.media));
        super::lines::origin_of(event, message.action, None, extra)
    });
    let parts = split(merge_text(content), caps.max_text_len);
    OutMessage { sender, parts, reply_to, quote, parent_missing, origin, files }
}

/// The API's `Extra`, with the message's media in the store added as `file` (matterbridge's attachments).
fn with_files(extra: Option<serde_json::Value>, files: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    if files.is_empty() {
        return extra;
    }
    let mut extra = match extra {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    extra.insert("file".to_owned(), serde_json::Value::Array(files));
    Some(serde_json::Value::Object(extra))
}

/// A name that reads the same but is not the name: a zero-width space after its first character (a name of one
/// character cannot be a highlight word in practice, and is kept).
fn no_ping<'a>(name: &std::borrow::Cow<'a, str>) -> std::borrow::Cow<'a, str> {
    let mut chars = name.char_indices();
    match (chars.next(), chars.next()) {
        (Some(_), Some((second, _))) => {
            let mut out = String::with_capacity(name.len() + 3);
            out.push_str(&name[..second]);
            out.push('\u{200B}');
            out.push_str(&name[second..]);
            std::borrow::Cow::Owned(out)
        }
        _ => name.clone(),
    }
}

fn quote_line(sender: Option<&str>, text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut quoted: String = first.chars().take(QUOTE_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    match sender {
        Some(sender) => format!("> {sender}: {quoted}\n"),
        None => format!("> {quoted}\n"),
    }
}

/// Keeps a segment the destination shows natively; writes the others as text.
fn native_or_text(segment: &Segment, caps: Capabilities, directory: &Directory, target: &Target<'_>) -> Segment {
    let native = match segment {
        Segment::Text(_) => true,
        Segment::Styled { .. } | Segment::CodeBlock { .. } | Segment::Quote { .. } | Segment::Link { .. } => {
            caps.rich_text && target.room.markdown
        }
        Segment::Mention { name, .. } if caps.mention => {
            if let Some(user) = directory.lookup(&target.room.addr, name) {
                return Segment::Mention { user: Some(user), name: name.clone() };
            }
            false
        }
        Segment::Image { .. } => caps.media.image,
        Segment::Audio { .. } => caps.media.audio,
        Segment::Video { .. } => caps.media.video,
        Segment::File { .. } => caps.media.file,
        Segment::Sticker { .. } => caps.media.sticker,
        Segment::Mention { .. } | Segment::RoomLink { .. } => false,
    };
    if native {
        return segment.clone();
    }
    let mut text = String::new();
    push_plain(&mut text, segment);
    Segment::Text(text)
}

/// Joins neighbouring text segments and drops empty ones; no line break at the end (a code block or quote written
/// as text ends its line).
pub(super) fn merge_text(segments: Vec<Segment>) -> Content {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for segment in segments {
        match (out.last_mut(), segment) {
            (_, Segment::Text(t)) if t.is_empty() => {}
            (Some(Segment::Text(last)), Segment::Text(t)) => last.push_str(&t),
            (_, segment) => out.push(segment),
        }
    }
    if let Some(Segment::Text(last)) = out.last_mut() {
        let kept = last.trim_end_matches('\n').len();
        last.truncate(kept);
    }
    out.retain(|s| !matches!(s, Segment::Text(t) if t.is_empty()));
    Content(out)
}
