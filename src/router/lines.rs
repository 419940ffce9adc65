//! The lines a bridge writes for events that are not messages: joins, leaves, gifts and notices (issue #33 §3).

use super::render::{Target, merge_text};
use super::split::split;
use crate::link::{Origin, OutMessage, SendAction};
use crate::model::{Event, EventKind, Segment};
use crate::template::Vars;

/// Joins, leaves, gifts and notices: one line, with the sender field filled where the platform has one,
/// else prefixed with the platform's name. The API gets the origin's kind in `event` (matterbridge's `join_leave`
/// where it has one; `gift`, `notice`) and a gift's details in `Extra`.
pub(super) fn event_line(mut line: Vec<Segment>, vars: &Vars<'_>, target: &Target<'_>, event: &Event) -> SendAction {
    let sender = if target.caps.separate_sender {
        Some(target.room.nick_format.render(vars))
    } else {
        line.insert(0, Segment::Text(format!("[{}] ", vars.platform)));
        None
    };
    let origin = target.caps.sender_details.then(|| {
        let (kind, extra) = match &event.kind {
            EventKind::Joined | EventKind::Left => ("join_leave", None),
            EventKind::Gift { name, count, value } => {
                ("gift", Some(serde_json::json!({"gift": {"name": name, "count": count, "value": value}})))
            }
            _ => ("notice", None),
        };
        origin_of(event, false, Some(kind), extra)
    });
    let parts = split(merge_text(line), target.caps.max_text_len);
    SendAction::Message(OutMessage { sender, parts, origin, ..OutMessage::default() })
}

/// Where an event comes from and who sent it, for platforms that show these apart from the text (the API).
pub(super) fn origin_of(
    event: &Event,
    action: bool,
    kind: Option<&'static str>,
    extra: Option<serde_json::Value>,
) -> Box<Origin> {
    let from = &event.origin.room;
    Box::new(Origin {
        account: from.account.to_string(),
        room: from.room.to_string(),
        platform: from.platform().as_str(),
        user_id: event.sender.as_ref().map(|s| s.id.to_string()).unwrap_or_default(),
        avatar: event.sender.as_ref().and_then(|s| s.avatar.clone()),
        action,
        event: kind,
        extra,
    })
}
