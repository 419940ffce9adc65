//! The Heihei simulator under the common contract (`sim::contract`).

use super::*;

impl crate::sim::contract::Simulator for HeiheiSim {
    fn platform(&self) -> crate::model::Platform {
        crate::model::Platform::Heihei
    }

    fn account(&self, name: &str) -> String {
        format!(
            "\n[accounts.heihei.{name}]\ntoken = \"{}\"\ninit_url = \"{}\"\nping_interval = \"1s\"\nrequest_timeout = \"3s\"\n",
            self.shared.config.token,
            self.init_url()
        )
    }

    fn room(&self) -> String {
        let host = self.shared.config.hosts[0];
        if self.live_of(host).is_none() {
            self.start_live(host);
        }
        format!("host/{host}")
    }

    fn say(&self, text: &str) {
        HeiheiSim::say(self, self.shared.config.hosts[0], 42, crate::sim::contract::MEMBER.1, text);
    }

    fn garbage(&self) {
        self.push_raw("{\"msgType\": \"text\", not json");
    }

    fn sent_texts(&self) -> Vec<String> {
        self.sent().into_iter().map(|s| s.text).collect()
    }

    fn drop_connections(&self) {
        HeiheiSim::drop_connections(self);
    }

    fn restart(&mut self, down_for: std::time::Duration) -> crate::sim::contract::Restarting<'_> {
        Box::pin(HeiheiSim::restart(self, down_for))
    }
}
