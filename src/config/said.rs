//! What `chatbridge check` says of a file it accepts: a line per bridge, and what is allowed but probably not meant.

use super::{ApiAccount, Config};

impl Config {
    /// What is allowed but probably not meant: said by `check`, which still accepts the file.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.notes.iter().map(ToString::to_string).collect();
        for (id, account) in &self.accounts {
            if let Some(api) = account.get::<ApiAccount>()
                && api.token.is_none()
                && !api.listen.ip().is_loopback()
            {
                out.push(format!(
                    "{id} listens on {} without a `token`: anyone who can reach that address can post to every bridge it is in and read what they say",
                    api.listen
                ));
            }
        }
        out.extend(self.media_without_store());
        out
    }

    /// Without `[media] public_url`: the rooms that receive media from a platform that carries them, which get the
    /// platform's own links (that may need its cookies, or expire) instead of the store's.
    fn media_without_store(&self) -> Option<String> {
        use crate::model::Platform;
        if self.media.enabled() {
            return None;
        }
        let carries =
            |p: Platform| matches!(p, Platform::Yunhu | Platform::Iirose | Platform::Fishroom | Platform::Heihei);
        let mut rooms: Vec<String> = Vec::new();
        for bridge in &self.bridges {
            for room in bridge.rooms.iter().filter(|r| r.direction.receives()) {
                let fed = bridge
                    .rooms
                    .iter()
                    .any(|s| s.addr != room.addr && s.direction.feeds() && carries(s.addr.platform()));
                if fed && !rooms.contains(&room.addr.to_string()) {
                    rooms.push(room.addr.to_string());
                }
            }
        }
        (!rooms.is_empty()).then(|| {
            format!(
                "[media] has no `public_url`: images and files reach {} as the source platform's links, which may need its cookies or expire; set `public_url` to keep them in the media store and send them natively (docs/configuration.md#media)",
                rooms.join(", ")
            )
        })
    }

    /// One line per bridge, for `chatbridge check`.
    pub fn summary(&self) -> Vec<String> {
        self.bridges
            .iter()
            .map(|bridge| {
                let rooms: Vec<String> =
                    bridge.rooms.iter().map(|r| format!("{} ({})", r.addr, r.direction.as_str())).collect();
                format!("bridge {}: {} rooms: {}", bridge.name, rooms.len(), rooms.join(", "))
            })
            .collect()
    }
}
