//! The one contract every simulator keeps, so that a scenario written once runs over all five platforms: the
//! bridge's account there, its first room, a member speaking in it, something that is not a valid frame, what
//! the bridge sent, dropped connections, and going down then coming back on the same port.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::model::Platform;

/// A future a simulator's restart returns.
pub type Restarting<'a> = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + 'a>>;

pub trait Simulator: Send + Sync {
    fn platform(&self) -> Platform;
    /// An `[accounts.<platform>.<name>]` table that logs the bridge in here, with short keep-alives and
    /// timeouts (what tests and the demo want).
    fn account(&self, name: &str) -> String;
    /// The first room, as a bridge's room address names it after `<platform>.<name>:` (for Heihei, the first
    /// host, put on air if it is not).
    fn room(&self) -> String;
    /// A member (not the bridge) says `text` in the first room.
    fn say(&self, text: &str);
    /// Something in the first room's stream that is not a valid frame or answer.
    fn garbage(&self);
    /// What the bridge sent, oldest first, as text.
    fn sent_texts(&self) -> Vec<String>;
    /// Closes every open connection; the server keeps listening.
    fn drop_connections(&self);
    /// Goes down (connections closed, nothing listening) for `down_for`, then listens on the same port again.
    fn restart(&mut self, down_for: Duration) -> Restarting<'_>;
}

/// A member of the simulated rooms who is never the bridge.
pub const MEMBER: (&str, &str) = ("679a51f1d4893", "member");
