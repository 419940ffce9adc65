//! Each account's send limit (`send_rate`, `send_burst`). The account tables themselves are each platform's
//! (`adapters/<platform>/config.rs`, dispatched by `adapters::config`).

use std::collections::BTreeMap;

use crate::model::{AccountId, Platform};
use crate::settings::{self, Fields, Report, Span};

pub use crate::adapters::config::{
    AccountConfig, ApiAccount, FishroomAccount, HeiheiAccount, IiroseAccount, MissevanAccount, YunhuAccount,
};
pub(crate) use crate::adapters::config::{parse_account, parse_room};

/// How fast the bridge may send through one account: a token bucket of `burst` messages refilled at
/// `per_second` (0: no limit).
pub use crate::bucket::SendLimit;

impl SendLimit {
    /// Conservative defaults: none of these platforms publishes its limits, so they stay well under what a
    /// busy human sends (live-room chats are the strictest), and the API, served locally, has none.
    pub fn default_for(platform: Platform) -> Self {
        let (per_second, burst) = crate::adapters::config::send_limit(platform);
        Self { per_second, burst }
    }
}

/// `send_rate` and `send_burst`, which every account table accepts.
pub(crate) fn send_limit(platform: Platform, fields: &mut Fields<'_, '_>, report: &mut Report<'_>) -> SendLimit {
    let mut limit = SendLimit::default_for(platform);
    if let Some(rate) = fields.non_negative("send_rate", report) {
        limit.per_second = rate;
    }
    if let Some(burst) = fields.positive_int("send_burst", report) {
        limit.burst = u32::try_from(burst).unwrap_or(u32::MAX);
    }
    limit
}

/// The `[accounts]` table read: the valid accounts with their send limits, every declared account id (valid or
/// not, so that a room naming a broken account is not reported a second time as naming an undefined one), and
/// where each is declared.
#[derive(Default)]
pub(super) struct Parsed {
    pub accounts: BTreeMap<AccountId, AccountConfig>,
    pub limits: BTreeMap<AccountId, SendLimit>,
    pub declared: Vec<AccountId>,
    pub spans: BTreeMap<AccountId, Span>,
}

pub(super) fn parse_accounts(value: &settings::Value<'_>, report: &mut Report<'_>) -> Parsed {
    let mut parsed = Parsed::default();
    let Some(platforms) = settings::table(value, "[accounts]", report) else {
        return parsed;
    };
    // Which account each secret read belongs to, to find one platform credential given to two accounts.
    let mut owners: Vec<AccountId> = Vec::new();
    for (platform_key, platform_value) in platforms.iter() {
        let name = platform_key.get_ref().as_ref();
        let Ok(platform) = name.parse::<Platform>() else {
            let known = Platform::known_list();
            report.error(&platform_key.span(), format!("unknown platform `{name}`; known platforms: {known}"));
            continue;
        };
        let Some(names) = settings::table(platform_value, &format!("[accounts.{platform}]"), report) else {
            continue;
        };
        for (account_key, account_value) in names.iter() {
            let id = AccountId::new(platform, account_key.get_ref().as_ref());
            parsed.declared.push(id.clone());
            parsed.spans.insert(id.clone(), account_key.span());
            let Some(mut fields) = Fields::of(account_value, &format!("[accounts.{id}]"), report) else { continue };
            let limit = send_limit(platform, &mut fields, report);
            let account = parse_account(&id, fields, report);
            owners.resize(report.secrets.len(), id.clone());
            if let Some(account) = account {
                parsed.limits.insert(id.clone(), limit);
                parsed.accounts.insert(id, account);
            }
        }
    }
    same_secret(&owners, report);
    same_fishroom_token(&parsed, report);
    parsed
}

/// Two Fishroom accounts with one token of one server: the server keeps one queue per token, so each would take
/// the other's messages.
fn same_fishroom_token(parsed: &Parsed, report: &mut Report<'_>) {
    let mut fishroom: Vec<(&AccountId, &super::FishroomAccount)> =
        parsed.accounts.iter().filter_map(|(id, a)| Some((id, a.get::<super::FishroomAccount>()?))).collect();
    // In file order: the later one is the one reported.
    fishroom.sort_by_key(|(id, _)| parsed.spans.get(*id).map_or(0, |span| span.start));
    for (i, (id, account)) in fishroom.iter().enumerate() {
        let same = |(_, other): &&(&AccountId, &super::FishroomAccount)| {
            other.api_url == account.api_url && other.token_id == account.token_id
        };
        if let Some((first, _)) = fishroom[..i].iter().find(same)
            && let Some(span) = parsed.spans.get(*id)
        {
            report.error(
                span,
                format!(
                    "[accounts.{id}] has the same token (`token_id` {} at {}) as [accounts.{first}]: the server keeps \
                     one queue per token, so each account would take the other's messages; put the rooms of both \
                     under one account",
                    account.token_id, account.api_url
                ),
            );
        }
    }
}

/// One credential on two accounts: two sessions of one user (or bot) on one platform, which the platforms end,
/// mix up or deliver to twice. `env:X` twice is found without reading it.
fn same_secret(owners: &[AccountId], report: &mut Report<'_>) {
    let secrets = std::mem::take(&mut report.secrets);
    for (i, (span, spec, value)) in secrets.iter().enumerate() {
        let unresolved = value.expose() == "unresolved";
        // A Fishroom token is its `token_id` (checked in `same_fishroom_token`), the key only its password.
        if owners[i].platform() == Platform::Fishroom {
            continue;
        }
        let first = secrets[..i].iter().enumerate().find(|(j, (_, other_spec, other))| {
            owners[*j] != owners[i]
                && owners[*j].platform() == owners[i].platform()
                && (other_spec == spec || (!unresolved && other == value))
        });
        if let Some((j, _)) = first {
            report.error(
                span,
                format!(
                    "[accounts.{}] has the same credential as [accounts.{}]: one login would hold two sessions, \
                     which the platform ends or serves twice; put the rooms of both under one account",
                    owners[i], owners[j]
                ),
            );
        }
    }
    report.secrets = secrets;
}

/// An account no bridge names is never started: said, since its table was written for something.
pub(super) fn unused(spans: &BTreeMap<AccountId, Span>, bridges: &[super::Bridge], report: &mut Report<'_>) {
    for (id, span) in spans {
        if !bridges.iter().any(|b| b.rooms.iter().any(|r| &r.addr.account == id)) {
            report.warn(span, format!("[accounts.{id}] is in no bridge: it is never started; name one of its rooms in a [[bridge]], or remove it"));
        }
    }
}
