//! The Yunhu simulator under the common contract (`sim::contract`).

use super::*;

impl crate::sim::contract::Simulator for YunhuSim {
    fn platform(&self) -> crate::model::Platform {
        crate::model::Platform::Yunhu
    }

    fn account(&self, name: &str) -> String {
        format!(
            "\n[accounts.yunhu.{name}]\ntoken = \"{}\"\napi_url = \"{}\"\nws_url = \"{}\"\nheartbeat = \"1s\"\n\
             idle_timeout = \"3s\"\nstream_settle = \"300ms\"\nrequest_timeout = \"3s\"\n",
            self.shared.config.users[0].0,
            self.api_url(),
            self.ws_url()
        )
    }

    fn room(&self) -> String {
        "group/g0".to_owned()
    }

    fn say(&self, text: &str) {
        YunhuSim::say(self, "g0", crate::sim::contract::MEMBER, text);
    }

    fn garbage(&self) {
        YunhuSim::garbage(self, b"\xff\x00\x07not protobuf");
    }

    fn sent_texts(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::Send(sent) => Some(sent.text),
                Request::Edit { text, .. } => Some(text),
                Request::Recall { .. } => None,
            })
            .collect()
    }

    fn drop_connections(&self) {
        YunhuSim::drop_connections(self);
    }

    fn restart(&mut self, down_for: std::time::Duration) -> crate::sim::contract::Restarting<'_> {
        Box::pin(self.server.restart(down_for))
    }
}
