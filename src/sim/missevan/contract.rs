//! The Missevan simulator under the common contract (`sim::contract`).

use std::time::Duration;

use super::*;

impl crate::sim::contract::Simulator for MissevanSim {
    fn platform(&self) -> crate::model::Platform {
        crate::model::Platform::Missevan
    }

    fn account(&self, name: &str) -> String {
        let token = &self.shared.config.users[0].0;
        format!(
            "\n[accounts.missevan.{name}]\ncookie = \"token={token}\"\napi_url = \"{}\"\nws_url = \"{}\"\n\
             heartbeat = \"200ms\"\nidle_timeout = \"2s\"\nrequest_timeout = \"3s\"\n",
            self.api_url(),
            self.ws_url()
        )
    }

    fn room(&self) -> String {
        self.shared.config.rooms[0].to_string()
    }

    fn say(&self, text: &str) {
        MissevanSim::say(self, self.shared.config.rooms[0], 42, crate::sim::contract::MEMBER.1, text);
    }

    fn garbage(&self) {
        self.push_raw(self.shared.config.rooms[0], RawFrame::Text("{\"type\": \"message\", not json".into()));
    }

    fn sent_texts(&self) -> Vec<String> {
        self.sent().into_iter().map(|s| s.message).collect()
    }

    fn drop_connections(&self) {
        MissevanSim::drop_connections(self);
    }

    fn restart(&mut self, down_for: Duration) -> crate::sim::contract::Restarting<'_> {
        Box::pin(self.server.restart(down_for))
    }
}
