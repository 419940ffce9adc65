//! The Fishroom simulator under the common contract (`sim::contract`).

use std::time::Duration;

use super::*;

impl crate::sim::contract::Simulator for FishroomSim {
    fn platform(&self) -> crate::model::Platform {
        crate::model::Platform::Fishroom
    }

    fn account(&self, name: &str) -> String {
        let (id, key, _) = &self.shared.config.tokens[0];
        format!(
            "\n[accounts.fishroom.{name}]\napi_url = \"{}\"\ntoken_id = \"{id}\"\ntoken_key = \"{key}\"\nrequest_timeout = \"3s\"\n",
            self.api_url()
        )
    }

    fn room(&self) -> String {
        self.shared.config.rooms[0].clone()
    }

    fn say(&self, text: &str) {
        FishroomSim::say(self, &self.shared.config.rooms[0], "irc", crate::sim::contract::MEMBER.1, text);
    }

    fn garbage(&self) {
        self.inject_raw(&self.shared.config.tokens[0].0, "{\"messages\": not json");
    }

    fn sent_texts(&self) -> Vec<String> {
        self.posted().into_iter().map(|p| p.content).collect()
    }

    fn drop_connections(&self) {
        FishroomSim::drop_connections(self);
    }

    fn restart(&mut self, down_for: Duration) -> crate::sim::contract::Restarting<'_> {
        Box::pin(FishroomSim::restart(self, down_for))
    }
}
