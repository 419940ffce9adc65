//! `[[bridge]]`: the short form (`rooms = [...]`) and the long form (`[[bridge.room]]`), with the checks
//! that need the whole file (undefined accounts, room forms, Fishroom's one receiving room per token).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use toml::de::DeValue;

use super::options::{RoomOptions, parse_options, room_with};
use super::{AccountConfig, Bridge, BridgeRoom, Direction, accounts};
use crate::model::{AccountId, Platform, RoomAddr};
use crate::settings::{Fields, Report, Span, Value};

struct Known<'a> {
    accounts: &'a BTreeMap<AccountId, AccountConfig>,
    declared: &'a [AccountId],
}

pub(super) fn parse(
    value: Option<&Value<'_>>,
    accounts: &BTreeMap<AccountId, AccountConfig>,
    declared: &[AccountId],
    report: &mut Report<'_>,
) -> Vec<Bridge> {
    let Some(value) = value else { return Vec::new() };
    let DeValue::Array(items) = value.get_ref() else {
        report.error(&value.span(), "`bridge` must be an array of tables: write each as [[bridge]]");
        return Vec::new();
    };
    let known = Known { accounts, declared };
    let mut bridges = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut limited: BTreeMap<AccountId, Vec<(RoomAddr, Span)>> = BTreeMap::new();
    let mut all_rooms: Vec<(RoomAddr, Span)> = Vec::new();
    for item in items.iter() {
        let Some(fields) = Fields::of(item, "[[bridge]]", report) else { continue };
        if let Some(DeValue::String(name)) = fields.peek("name")
            && !names.insert(name.to_string())
        {
            report.error(&item.span(), format!("a second bridge is named `{name}`; bridge names must be unique"));
        }
        let Some((bridge, spans)) = parse_bridge(fields, &known, report) else { continue };
        private_with_public(&bridge, &spans, report);
        for (room, span) in bridge.rooms.iter().zip(spans) {
            all_rooms.push((room.addr.clone(), span.clone()));
            if one_room_rule(room) {
                let rooms = limited.entry(room.addr.account.clone()).or_default();
                if !rooms.iter().any(|(r, _)| r == &room.addr) {
                    rooms.push((room.addr.clone(), span));
                }
            }
        }
        bridges.push(bridge);
    }
    // Heihei IM is receive-only: the platform documents no client-side IM send.
    for bridge in &bridges {
        for room in bridge.rooms.iter() {
            if room.addr.platform() == Platform::Heihei
                && room.addr.room.as_str().starts_with("im/")
                && room.direction.receives()
                && let Some((_, span)) = all_rooms.iter().find(|(r, _)| r == &room.addr)
            {
                report.error(span, format!("`{}` is a Heihei IM conversation, which can only be read (the platform documents no way to send IM): give it direction = \"in\"", room.addr));
            }
        }
    }
    // An IIROSE session logs into a room: private conversations alone give it none.
    let mut iirose_rooms: BTreeMap<AccountId, (bool, Span)> = BTreeMap::new();
    for (room, span) in &all_rooms {
        if room.platform() == Platform::Iirose {
            let entry = iirose_rooms.entry(room.account.clone()).or_insert((false, span.clone()));
            entry.0 |= !room.room.is_conversation();
        }
    }
    for (account, (has_room, span)) in iirose_rooms {
        if !has_room {
            report.error(&span, format!("account `{account}` has only private conversations: an IIROSE session logs into a room, so give it one room address too"));
        }
    }
    for (account, rooms) in limited {
        if let [(first, _), (second, span), ..] = rooms.as_slice() {
            let (a, b) = (&first.room, &second.room);
            let message = match account.platform() {
                Platform::Fishroom => format!(
                    "account `{account}` would receive from two rooms, `{a}` and `{b}`: a Fishroom server keeps one \
                     queue per token and throws away other rooms' messages when a token polls for one room, so \
                     each receiving room needs its own token (its own account); a send-only room \
                     (direction = \"out\") may share it"
                ),
                _ => format!(
                    "account `{account}` would be in two rooms, `{a}` and `{b}`: an IIROSE session is in one room \
                     at a time, so use one account per room (private conversations `user/…` may be added freely)"
                ),
            };
            report.error(span, message);
        }
    }
    let mut templates = crate::template::Sharing::default();
    // Each bridge's rooms are its own until the configuration is shared.
    for room in bridges.iter_mut().flat_map(|b| Arc::get_mut(&mut b.rooms).into_iter().flatten()) {
        for template in [&mut room.format, &mut room.nick_format, &mut room.media_format] {
            templates.share(template);
        }
    }
    bridges
}

/// A private conversation (`user/…`, `im/…`) in a bridge of public rooms: what is said in public reaches one
/// person's private chat. Meant sometimes (a moderator who follows a room from a private chat), so said, not
/// refused. A private chat paired with one room (its relay to a room of its own) and the other way (a bot's
/// private messages relayed to a room of its keepers) are common and not said.
fn private_with_public(bridge: &Bridge, spans: &[Span], report: &mut Report<'_>) {
    let public: Vec<&BridgeRoom> =
        bridge.rooms.iter().filter(|r| !r.addr.room.is_conversation() && r.direction.feeds()).collect();
    let [first, _, ..] = public.as_slice() else { return };
    for (room, span) in bridge.rooms.iter().zip(spans) {
        if room.addr.room.is_conversation() && room.direction.receives() {
            report.warn(
                span,
                format!(
                    "`{}` is a private conversation, and bridge `{}` sends it what is said in public rooms (`{}`): if \
                     that is not meant, give the private chat a bridge of its own, or direction = \"in\"",
                    room.addr, bridge.name, first.addr
                ),
            );
        }
    }
}

/// Rooms of which an account may have only one: Fishroom rooms it receives from, IIROSE rooms (private
/// conversations `user/…` aside).
fn one_room_rule(room: &BridgeRoom) -> bool {
    match room.addr.platform() {
        Platform::Fishroom => room.direction.feeds(),
        Platform::Iirose => !room.addr.room.is_conversation(),
        _ => false,
    }
}

fn parse_bridge(mut fields: Fields<'_, '_>, known: &Known<'_>, report: &mut Report<'_>) -> Option<(Bridge, Vec<Span>)> {
    let bridge_span = fields.span.clone();
    let name = fields.required_str("name", "a bridge", report).and_then(|(s, span)| {
        if s.trim().is_empty() {
            report.error(
                &span,
                "a bridge's `name` is empty; give it one (it names the bridge in logs, metrics and the store)",
            );
            return None;
        }
        Some(s.to_owned())
    });
    let defaults = parse_options(&mut fields, &RoomOptions::default(), report);
    let notices = fields.bool("notices", report).unwrap_or(false);
    let notice_after = fields.duration("notice_after", report).unwrap_or(std::time::Duration::from_secs(120));
    if !notices && let Some(span) = fields.span_of("notice_after") {
        report.warn(&span, "`notice_after` without `notices = true` has no effect");
    }
    let mut rooms: Vec<(BridgeRoom, Span)> = Vec::new();
    let mut all_parsed = true;
    if let Some(list) = fields.str_list("rooms", report) {
        for (text, span) in list {
            match parse_address(text, &span, known, report) {
                Some(addr) => rooms.push((room_with(addr, Direction::InOut, defaults.clone()), span)),
                None => all_parsed = false,
            }
        }
    }
    let short_form = !rooms.is_empty() || !all_parsed;
    if let Some(value) = fields.get("room") {
        if short_form {
            report.error(
                &value.span(),
                "this bridge has both `rooms = [...]` and [[bridge.room]] tables; use one form (the long one gives each room its options)",
            );
        }
        match value.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match Fields::of(item, "[[bridge.room]]", report)
                        .and_then(|f| parse_room(f, &defaults, known, report))
                    {
                        Some(room) => rooms.push(room),
                        None => all_parsed = false,
                    }
                }
            }
            _ => report.error(&value.span(), "`room` must be an array of tables: write each as [[bridge.room]]"),
        }
    }
    fields.deny_unknown("[[bridge]]", report);
    let name = name?;
    for (i, (room, span)) in rooms.iter().enumerate() {
        if rooms[..i].iter().any(|(r, _)| r.addr == room.addr) {
            report.error(span, format!("room `{}` is in bridge `{name}` twice", room.addr));
        }
    }
    if !all_parsed {
        return None;
    }
    if rooms.len() < 2 {
        let n = rooms.len();
        report.error(&bridge_span, format!("bridge `{name}` has {n} room(s); a bridge joins at least two rooms"));
        return None;
    }
    if !rooms.iter().any(|(r, _)| r.direction.feeds()) || !rooms.iter().any(|(r, _)| r.direction.receives()) {
        report.error(&bridge_span, format!("bridge `{name}` relays nothing: it needs a room that feeds it (in/inout) and one that receives (out/inout)"));
        return None;
    }
    let (rooms, spans): (Vec<BridgeRoom>, _) = rooms.into_iter().unzip();
    Some((Bridge { name, rooms: rooms.into(), notices: notices.then_some(notice_after) }, spans))
}

fn parse_room(
    mut fields: Fields<'_, '_>,
    defaults: &RoomOptions,
    known: &Known<'_>,
    report: &mut Report<'_>,
) -> Option<(BridgeRoom, Span)> {
    let address = fields.required_str("room", "a [[bridge.room]]", report);
    let direction = match fields.str("direction", report) {
        None => Some(Direction::InOut),
        Some(("in", _)) => Some(Direction::In),
        Some(("out", _)) => Some(Direction::Out),
        Some(("inout", _)) => Some(Direction::InOut),
        Some((other, span)) => {
            report.error(&span, format!("`direction` is `{other}`; expected in, out or inout"));
            None
        }
    };
    let options = parse_options(&mut fields, defaults, report);
    fields.deny_unknown("[[bridge.room]]", report);
    let (text, span) = address?;
    let addr = parse_address(text, &span, known, report)?;
    Some((room_with(addr, direction?, options), span))
}

/// `<platform>.<account>:<room>`, naming a defined account.
fn parse_address(text: &str, span: &Span, known: &Known<'_>, report: &mut Report<'_>) -> Option<RoomAddr> {
    let parsed = text.split_once(':').and_then(|(account, room)| {
        let (platform, name) = account.split_once('.')?;
        (!platform.is_empty() && !name.is_empty()).then_some((platform, name, room))
    });
    let Some((platform, name, room)) = parsed else {
        report.error(
            span,
            format!(
                "malformed room address `{text}`: expected `<platform>.<account>:<room>`, e.g. `fishroom.tuna:general`"
            ),
        );
        return None;
    };
    let Ok(platform) = platform.parse::<Platform>() else {
        report.error(
            span,
            format!(
                "room address `{text}` names unknown platform `{platform}`; known platforms: {}",
                Platform::known_list()
            ),
        );
        return None;
    };
    let account = AccountId::new(platform, name);
    if !known.declared.contains(&account) {
        report.error(
            span,
            format!("room address `{text}` names account `{account}`, which is not defined: add [accounts.{account}]"),
        );
        return None;
    }
    let room = accounts::parse_room(platform, room, span, report)?;
    // A declared account with problems of its own has been reported already.
    known.accounts.contains_key(&account).then(|| RoomAddr::new(account, room))
}
