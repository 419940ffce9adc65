//! The account factory: one row per platform (its `config::SPEC`) says how its account table is read, what its
//! room addresses look like, its default send limit, and which adapter serves its accounts. Adding a platform adds
//! one line to [`spec`].

use std::any::Any;
use std::sync::Arc;

use super::{Adapter, api, fishroom, heihei, iirose, missevan, yunhu};
use crate::model::{AccountId, Platform, RoomId};
use crate::settings::{Fields, Report, Span};

pub use api::config::ApiAccount;
pub use fishroom::config::FishroomAccount;
pub use heihei::config::HeiheiAccount;
pub use iirose::config::IiroseAccount;
pub use missevan::config::MissevanAccount;
pub use yunhu::config::YunhuAccount;

/// A platform's row in the factory.
pub struct Spec {
    /// Reads an account's table (`None` when it has problems, all of them reported).
    pub(crate) parse: fn(&AccountId, Fields<'_, '_>, &str, &mut Report<'_>) -> Option<AccountConfig>,
    /// Whether a room address (the part after `<platform>.<name>:`) has the platform's form.
    pub is_room: fn(&str) -> bool,
    /// That form, for the error naming an address that does not have it.
    pub room_form: &'static str,
    /// The default send limit: (messages per second, burst).
    pub send_limit: (f64, u32),
}

/// The factory's rows.
pub fn spec(platform: Platform) -> &'static Spec {
    match platform {
        Platform::Fishroom => &fishroom::config::SPEC,
        Platform::Missevan => &missevan::config::SPEC,
        Platform::Iirose => &iirose::config::SPEC,
        Platform::Heihei => &heihei::config::SPEC,
        Platform::Yunhu => &yunhu::config::SPEC,
        Platform::Api => &api::config::SPEC,
    }
}

/// A platform's row in the factory (`SPEC`) and its [`Account`] impl, from the items its `config.rs` defines
/// (`parse`, `is_room`, `ROOM_FORM`, `SEND_LIMIT`): `factory_row!(XAccount, super::XAdapter, X);`.
macro_rules! factory_row {
    ($account:ty, $adapter:ty, $platform:ident) => {
        /// This platform's row in the account factory (`adapters::config::spec`).
        pub const SPEC: $crate::adapters::config::Spec = $crate::adapters::config::Spec {
            parse: |id, fields, what, report| {
                parse(id, fields, what, report).map($crate::adapters::config::AccountConfig::new)
            },
            is_room,
            room_form: ROOM_FORM,
            send_limit: SEND_LIMIT,
        };

        impl $crate::adapters::config::Account for $account {
            const PLATFORM: $crate::model::Platform = $crate::model::Platform::$platform;

            fn adapter(&self) -> Box<dyn $crate::adapters::Adapter> {
                Box::new(<$adapter>::new(self.clone()))
            }

            fn servers(&self) -> Vec<&reqwest::Url> {
                servers(self)
            }
        }
    };
}
pub(crate) use factory_row;

/// A platform's account settings: what its `config.rs` type says of itself.
pub trait Account: std::fmt::Debug + Clone + PartialEq + Send + Sync + 'static {
    const PLATFORM: Platform;
    /// The adapter that runs an account with these settings.
    fn adapter(&self) -> Box<dyn Adapter>;
    /// The addresses of the account's own servers (the media fetcher trusts their hosts, private or not).
    fn servers(&self) -> Vec<&reqwest::Url>;
}

/// Any platform's account settings, behind one type.
trait AnyAccount: std::fmt::Debug + Send + Sync {
    fn platform(&self) -> Platform;
    fn adapter(&self) -> Box<dyn Adapter>;
    fn as_any(&self) -> &dyn Any;
    fn hosts(&self) -> Vec<String>;
    fn same(&self, other: &dyn AnyAccount) -> bool;
}

impl<T: Account> AnyAccount for T {
    fn platform(&self) -> Platform {
        T::PLATFORM
    }

    fn adapter(&self) -> Box<dyn Adapter> {
        Account::adapter(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn hosts(&self) -> Vec<String> {
        self.servers().iter().filter_map(|url| url.host_str().map(str::to_owned)).collect()
    }

    fn same(&self, other: &dyn AnyAccount) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

/// The settings of one account, whichever its platform.
#[derive(Clone, Debug)]
pub struct AccountConfig(Arc<dyn AnyAccount>);

impl PartialEq for AccountConfig {
    fn eq(&self, other: &Self) -> bool {
        self.0.same(&*other.0)
    }
}

impl AccountConfig {
    pub fn new(account: impl Account) -> Self {
        Self(Arc::new(account))
    }

    pub fn platform(&self) -> Platform {
        self.0.platform()
    }

    /// The adapter that runs this account.
    pub fn adapter(&self) -> Box<dyn Adapter> {
        self.0.adapter()
    }

    /// The hosts of the account's own servers.
    pub fn hosts(&self) -> Vec<String> {
        self.0.hosts()
    }

    /// The settings as their platform's type, when they are of that platform.
    pub fn get<T: Account>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }
}

/// Parses one account table with its platform's schema. `None` when it has problems (all of them reported).
pub(crate) fn parse_account(id: &AccountId, fields: Fields<'_, '_>, report: &mut Report<'_>) -> Option<AccountConfig> {
    (spec(id.platform()).parse)(id, fields, &format!("[accounts.{id}]"), report)
}

/// A platform's default send limit: (messages per second, burst).
pub fn send_limit(platform: Platform) -> (f64, u32) {
    spec(platform).send_limit
}

/// Checks the room part of an address against the platform's form.
pub(crate) fn parse_room(platform: Platform, room: &str, span: &Span, report: &mut Report<'_>) -> Option<RoomId> {
    let spec = spec(platform);
    if !(spec.is_room)(room) {
        report.error(span, format!("room `{room}` is not {}", spec.room_form));
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
