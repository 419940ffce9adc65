//! The account factory's side of the configuration: which platform's table reads an account, and each
//! platform's room address form and default send limit. Adding a platform adds one arm to each match here.

use super::{api, fishroom, heihei, iirose, missevan, yunhu};
use crate::model::{AccountId, Platform, RoomId};
use crate::settings::{Fields, Report, Span};

pub use api::config::ApiAccount;
pub use fishroom::config::FishroomAccount;
pub use heihei::config::HeiheiAccount;
pub use iirose::config::IiroseAccount;
pub use missevan::config::MissevanAccount;
pub use yunhu::config::YunhuAccount;

/// The settings of one account.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountConfig {
    Fishroom(FishroomAccount),
    Missevan(MissevanAccount),
    Iirose(IiroseAccount),
    Heihei(HeiheiAccount),
    Yunhu(YunhuAccount),
    Api(ApiAccount),
}

impl AccountConfig {
    pub fn platform(&self) -> Platform {
        match self {
            AccountConfig::Fishroom(_) => Platform::Fishroom,
            AccountConfig::Missevan(_) => Platform::Missevan,
            AccountConfig::Iirose(_) => Platform::Iirose,
            AccountConfig::Heihei(_) => Platform::Heihei,
            AccountConfig::Yunhu(_) => Platform::Yunhu,
            AccountConfig::Api(_) => Platform::Api,
        }
    }
}

/// Parses one account table with its platform's schema. `None` when it has problems (all of them reported).
pub(crate) fn parse_account(id: &AccountId, fields: Fields<'_, '_>, report: &mut Report<'_>) -> Option<AccountConfig> {
    let what = &format!("[accounts.{id}]");
    match id.platform() {
        Platform::Fishroom => fishroom::config::parse(id, fields, what, report).map(AccountConfig::Fishroom),
        Platform::Missevan => missevan::config::parse(id, fields, what, report).map(AccountConfig::Missevan),
        Platform::Iirose => iirose::config::parse(id, fields, what, report).map(AccountConfig::Iirose),
        Platform::Heihei => heihei::config::parse(id, fields, what, report).map(AccountConfig::Heihei),
        Platform::Yunhu => yunhu::config::parse(id, fields, what, report).map(AccountConfig::Yunhu),
        Platform::Api => api::config::parse(id, fields, what, report).map(AccountConfig::Api),
    }
}

/// A platform's default send limit: (messages per second, burst).
pub fn send_limit(platform: Platform) -> (f64, u32) {
    match platform {
        Platform::Fishroom => fishroom::config::SEND_LIMIT,
        Platform::Missevan => missevan::config::SEND_LIMIT,
        Platform::Iirose => iirose::config::SEND_LIMIT,
        Platform::Heihei => heihei::config::SEND_LIMIT,
        Platform::Yunhu => yunhu::config::SEND_LIMIT,
        Platform::Api => api::config::SEND_LIMIT,
    }
}

/// Checks the room part of an address against the platform's form.
pub(crate) fn parse_room(platform: Platform, room: &str, span: &Span, report: &mut Report<'_>) -> Option<RoomId> {
    let (ok, form) = match platform {
        Platform::Fishroom => (fishroom::config::is_room(room), fishroom::config::ROOM_FORM),
        Platform::Missevan => (missevan::config::is_room(room), missevan::config::ROOM_FORM),
        Platform::Iirose => (iirose::config::is_room(room), iirose::config::ROOM_FORM),
        Platform::Heihei => (heihei::config::is_room(room), heihei::config::ROOM_FORM),
        Platform::Yunhu => (yunhu::config::is_room(room), yunhu::config::ROOM_FORM),
        Platform::Api => (api::config::is_room(room), api::config::ROOM_FORM),
    };
    if !ok {
        report.error(span, format!("room `{room}` is not {form}"));
        return None;
    }
    Some(RoomId::new(room))
}

#[cfg(test)]
mod tests {
    use super::heihei::config::HeiheiRoom;
    use super::missevan::config::MissevanRoom;
    use super::yunhu::config::Chat;
    use crate::model::RoomId;

    #[test]
    fn room_addresses_are_parsed_once_into_their_platforms_types() {
        assert_eq!(MissevanRoom::parse("868858631"), Some(MissevanRoom(868_858_631)));
        for bad in ["", "room", "-1", "99999999999999999999", "1 2"] {
            assert_eq!(MissevanRoom::parse(bad), None, "{bad}");
        }
        assert_eq!(HeiheiRoom::parse("host/38298237"), Some(HeiheiRoom::Host(38_298_237)));
        assert_eq!(HeiheiRoom::parse("live/7"), Some(HeiheiRoom::Live(7)));
        assert_eq!(HeiheiRoom::parse("im/42"), Some(HeiheiRoom::Im(42)));
        for bad in ["host/", "room/1", "host/x", "live/99999999999999999999", "im"] {
            assert_eq!(HeiheiRoom::parse(bad), None, "{bad}");
        }
        let chat = Chat::parse(&RoomId::new("group/g-0_1")).unwrap();
        assert_eq!((chat.id.as_str(), chat.kind), ("g-0_1", 2));
        assert_eq!(Chat::parse(&RoomId::new("user/9001")).map(|c| c.kind), Some(1));
        assert_eq!(Chat::parse(&RoomId::new("bot/b")).map(|c| c.kind), Some(3));
        for bad in ["group/", "channel/1", "group/a b", "group"] {
            assert!(Chat::parse(&RoomId::new(bad)).is_none(), "{bad}");
        }
    }
}
