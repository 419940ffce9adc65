//! Each account's send limit (`send_rate`, `send_burst`). The account tables themselves are each platform's
//! (`adapters/<platform>/config.rs`, dispatched by `adapters::config`).

use crate::model::Platform;
use crate::settings::{Fields, Report};

pub use crate::adapters::config::{
    AccountConfig, ApiAccount, FishroomAccount, HeiheiAccount, IiroseAccount, MissevanAccount, YunhuAccount,
};
pub(crate) use crate::adapters::config::{parse_account, parse_room};

/// How fast the bridge may send through one account: a token bucket of `burst` messages refilled at
/// `per_second` (0: no limit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SendLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl SendLimit {
    /// Conservative defaults: none of these platforms publishes its limits, so they stay well under what a
    /// busy human sends (live-room chats are the strictest), and the API, served locally, has none.
    pub fn default_for(platform: Platform) -> Self {
        let (per_second, burst) = crate::adapters::config::send_limit(platform);
        Self { per_second, burst }
    }

    pub fn is_limited(&self) -> bool {
        self.per_second > 0.0
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
