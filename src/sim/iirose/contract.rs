//! The IIROSE simulator under the common contract (`sim::contract`).

use super::*;

impl crate::sim::contract::Simulator for IiroseSim {
    fn platform(&self) -> crate::model::Platform {
        crate::model::Platform::Iirose
    }

    fn account(&self, name: &str) -> String {
        let user = &self.shared.config.users[0];
        format!(
            "\n[accounts.iirose.{name}]\nusername = \"{}\"\npassword = \"{}\"\nws_url = \"{}\"\nheartbeat = \"1s\"\n\
             echo_timeout = \"2s\"\nrequest_timeout = \"3s\"\n",
            user.name,
            user.password,
            self.ws_url()
        )
    }

    fn room(&self) -> String {
        self.shared.config.rooms[0].clone()
    }

    fn say(&self, text: &str) {
        let (uid, name) = crate::sim::contract::MEMBER;
        IiroseSim::say(self, &self.shared.config.rooms[0], uid, name, text);
    }

    fn garbage(&self) {
        // 0x01 announces a gzip body; what follows is not one.
        self.raw_frame(&self.shared.config.rooms[0], "\u{1}not gzip");
    }

    fn sent_texts(&self) -> Vec<String> {
        self.said().into_iter().map(|s| s.text).collect()
    }

    fn drop_connections(&self) {
        IiroseSim::drop_connections(self);
    }

    fn restart(&mut self, down_for: std::time::Duration) -> crate::sim::contract::Restarting<'_> {
        Box::pin(self.server.restart(down_for))
    }
}
