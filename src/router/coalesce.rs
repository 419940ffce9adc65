//! Sends that stand for more than one queued message, composed when a room's send token comes: the messages that
//! waited longer than the room's `max_lag` replaced by one summary line (`on_lag = "summarise"`), or the plain
//! messages that waited for the token merged into one, one line each (`coalesce`). A busy room behind a send limit
//! then keeps up with the conversation instead of falling minutes behind.
//!
//! A merged copy gets a group of its own in the id map: its ids are recorded there (so it is ours, and a reply to it
//! quotes what it says). The messages it stands for have no copy of their own in that room, so a recall of one of them
//! is not sent there (it would take the others' lines with it), and an edit goes as a new line marked "(edited)"; a
//! reply to one of them points at the merged copy while the id map holds them in memory.

use super::*;
use crate::config::OnLag;
use crate::link::OutMessage;
use crate::model::{Content, Message, Platform, Segment};
use crate::router::idmap::MergedLines;

/// The most lines one merged message carries.
pub(super) const MAX_LINES: usize = 50;

/// The longest merged message, in characters, where the destination sets no length limit: about a screenful.
pub(super) const MAX_CHARS: usize = 2000;

/// What a send covering several queued messages is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cover {
    Merged,
    Summary,
}

/// A send that stands for the first `covers` messages of a room's queue; kept until it is answered, so a retry
/// sends the same.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// The store key of the first message it stands for.
    pub(super) front_key: u64,
    pub(super) covers: usize,
    pub(super) action: SendAction,
    pub(super) client_ids: Vec<RemoteId>,
    /// The merged copy's group (its ids are recorded there); none for a summary.
    pub(super) group: Option<GroupId>,
    /// The groups of the messages merged (a reply to one of them points at the merged copy).
    pub(super) members: Vec<GroupId>,
    pub(super) kind: Cover,
}

/// A message that may go merged with others: text (styled or not: a merged line is plain), mentions and links
/// only, no code block or quote (lines of their own), no reply, never handed out before.
fn mergeable(item: &Queued) -> bool {
    let EventKind::Message(Message { content, reply: None, .. }) = &item.event.kind else { return false };
    item.attempts == 0
        && !item.restored
        && content.0.iter().all(|s| {
            matches!(
                s,
                Segment::Text(_)
                    | Segment::Styled { .. }
                    | Segment::Mention { .. }
                    | Segment::Link { .. }
                    | Segment::RoomLink { .. }
            )
        })
}

impl Router {
    /// When a room's send token comes, what its next send stands for, if more than its first message.
    pub(super) fn compose(&mut self, room: &RoomAddr, caps: Capabilities, waited: bool) -> Option<Outgoing> {
        let front = self.outbox.peek(room, 0)?;
        let options = self.rules.room(front.to);
        let (summarise, coalesce) = (options.on_lag == OnLag::Summarise, options.coalesce);
        if summarise && let Some(summary) = self.summary(room, caps) {
            return Some(summary);
        }
        if waited && coalesce { self.merge(room, caps) } else { None }
    }

    /// The messages at the front of the queue older than their room's `max_lag`, as one line saying how many were
    /// skipped and from where.
    fn summary(&mut self, room: &RoomAddr, caps: Capabilities) -> Option<Outgoing> {
        let mut from: Vec<(Platform, usize)> = Vec::new();
        let mut covers = 0;
        while let Some(item) = self.outbox.peek(room, covers) {
            let options = self.rules.room(item.to);
            let late = options.on_lag == OnLag::Summarise && item.since.elapsed() > options.max_lag;
            // Edits and recalls are few and matter (a recall may be moderation): they still go.
            if !late || item.attempts > 0 || !matches!(item.event.kind, EventKind::Message(_)) {
                break;
            }
            let platform = item.event.origin.room.platform();
            match from.iter_mut().find(|(p, _)| *p == platform) {
                Some((_, n)) => *n += 1,
                None => from.push((platform, 1)),
            }
            covers += 1;
        }
        if covers == 0 {
            return None;
        }
        let counts: Vec<String> = from
            .iter()
            .enumerate()
            .map(|(i, (platform, n))| {
                let what = if i > 0 {
                    ""
                } else if *n == 1 {
                    " message"
                } else {
                    " messages"
                };
                format!("{n}{what} from {}", platform.display_name())
            })
            .collect();
        let text = format!("… {} skipped …", join_and(&counts));
        let front = self.outbox.peek(room, 0)?;
        let (front_key, bridge) = (front.key, self.rules.bridge_name(front.to).to_owned());
        let sender = caps.separate_sender.then_some(bridge);
        let message = OutMessage { sender, parts: vec![Content::text(text)], ..OutMessage::default() };
        let client_ids = caps.client_ids.generate().into_iter().collect();
        let action = SendAction::Message(message);
        Some(Outgoing { front_key, covers, action, client_ids, group: None, members: Vec::new(), kind: Cover::Summary })
    }

    /// The plain messages at the front of the queue, each rendered with its room's `format`, as the lines of one
    /// message: as many as fit the destination's length limit ([`MAX_CHARS`] where it has none), [`MAX_LINES`] at most.
    fn merge(&mut self, room: &RoomAddr, caps: Capabilities) -> Option<Outgoing> {
        // Lines carry their sender: rendered as where there is no separate sender field.
        let line_caps = Capabilities { separate_sender: false, ..caps };
        let mut lines: Vec<String> = Vec::new();
        let mut members: Vec<GroupId> = Vec::new();
        let mut standing: Vec<(GroupId, Option<String>)> = Vec::new();
        let mut chars = 0;
        while lines.len() < MAX_LINES {
            let Some(item) = self.outbox.peek(room, lines.len()) else { break };
            if !mergeable(item) {
                break;
            }
            let to = item.to;
            let target = Target {
                room: self.rules.room(to),
                source: self.rules.source_room(to, &item.event.origin.room),
                bridge: self.rules.bridge_name(to),
                caps: line_caps,
                media: &Vec::new(),
            };
            let Rendered::Send(SendAction::Message(out)) =
                render(&item.event, &target, self.ids.as_mut(), &self.directory)
            else {
                break;
            };
            let [part] = out.parts.as_slice() else { break };
            let line = part.to_plain_text();
            let len = line.chars().count();
            let needed = if lines.is_empty() { len } else { chars + 1 + len };
            if needed > caps.max_text_len.unwrap_or(MAX_CHARS) {
                break;
            }
            chars = needed;
            if let Some(group) = self.outbox.peek(room, lines.len()).and_then(|item| item.group) {
                members.push(group);
                standing.push((group, Some(line.clone())));
            }
            lines.push(line);
        }
        if lines.len() < 2 {
            return None;
        }
        let covers = lines.len();
        let text = lines.join("\n");
        let (front_key, bridge, time) = {
            let front = self.outbox.peek(room, 0)?;
            (front.key, self.rules.bridge_name(front.to).to_owned(), front.event.time)
        };
        let snippet = Snippet { sender: None, text: text.chars().take(SNIPPET_CHARS).collect(), time };
        let group = self.ids.new_group(None, &snippet);
        if self.store.durable() {
            self.store.group(group.0, None, snippet);
        }
        let client_ids: Vec<RemoteId> = caps.client_ids.generate().into_iter().collect();
        self.ids.add_pending(group, room, &client_ids);
        let sender = caps.separate_sender.then_some(bridge);
        self.ids.set_merged_lines(group, MergedLines { sender: sender.clone(), lines: standing });
        let message = OutMessage { sender, parts: vec![Content::text(text)], ..OutMessage::default() };
        let action = SendAction::Message(message);
        Some(Outgoing { front_key, covers, action, client_ids, group: Some(group), members, kind: Cover::Merged })
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
