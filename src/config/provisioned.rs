//! Bridges provisioned at runtime (issue #34): kept in the store, not the file, each as one `[[bridge]]` table
//! written as the file writes it. They are checked with the file exactly as `check` checks a file: the file's
//! text and theirs are read as one, each bridge's problems named by its own name, line and key.

use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::{Config, Problem, Problems};

/// The file's text, kept to check provisioned bridges with; its `Debug` shows neither the text nor a secret in it.
#[derive(Clone, Default)]
pub(super) struct Source {
    text: Arc<str>,
    file: Arc<str>,
}

impl Source {
    pub(super) fn new(text: &str, file: &str) -> Self {
        Self { text: text.into(), file: file.into() }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({}, {} bytes)", self.file, self.text.len())
    }
}

/// One bridge as the store keeps it: its name, and its `[[bridge]]` table as TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    pub name: String,
    pub toml: String,
}

/// A provisioned bridge that does not go with the file (an account it names is gone, it clashes with another
/// bridge): left out of what runs, with its problems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    pub name: String,
    pub problems: Problems,
}

/// How problems of one provisioned bridge name it.
pub fn label(name: &str) -> String {
    format!("provisioned bridge `{name}`")
}

fn problem(file: &str, message: impl Into<String>, field: Option<&str>) -> Problems {
    let field = field.map(str::to_owned);
    Problems(vec![Problem { file: file.to_owned(), line: 1, column: 1, message: message.into(), field }])
}

impl Provisioned {
    /// One bridge written as TOML: a single `[[bridge]]` table with a `name`, and nothing else (accounts and
    /// `[general]` belong to the file). Its keys are checked with the file ([`Config::with_provisioned`]).
    pub fn from_toml(text: &str) -> Result<Self, Problems> {
        let what = "provisioned bridge";
        let root = DeTable::parse(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start).min(text.len());
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let message = e.message().trim().to_owned();
            Problems(vec![Problem { file: what.to_owned(), line, column, message, field: None }])
        })?;
        let root = root.get_ref();
        if let Some((key, _)) = root.iter().find(|(key, _)| key.get_ref() != "bridge") {
            let message = format!(
                "`{}` cannot be provisioned: a provisioned bridge is one [[bridge]] table, and accounts and [general] stay in the file",
                key.get_ref()
            );
            return Err(problem(what, message, Some(key.get_ref())));
        }
        let items = match root.get("bridge").map(|v| v.get_ref()) {
            Some(DeValue::Array(items)) => items,
            Some(_) => return Err(problem(what, "`bridge` must be written as [[bridge]]", Some("bridge"))),
            None => return Err(problem(what, "there is no [[bridge]] table", None)),
        };
        let items: Vec<_> = items.iter().collect();
        let [item] = items.as_slice() else {
            let message = format!("{} [[bridge]] tables: provision one bridge at a time", items.len());
            return Err(problem(what, message, Some("bridge")));
        };
        let name = match item.get_ref() {
            DeValue::Table(table) => match table.get("name").map(|v| v.get_ref()) {
                Some(DeValue::String(name)) if !name.trim().is_empty() => name.to_string(),
                _ => return Err(problem(what, "a bridge needs a `name` (text, not empty)", Some("name"))),
            },
            _ => return Err(problem(what, "`bridge` must be a table", Some("bridge"))),
        };
        if name.len() > 200 || name.chars().any(char::is_control) {
            return Err(problem(
                &label(&name),
                "a bridge's `name` is at most 200 bytes, without control characters",
                Some("name"),
            ));
        }
        Ok(Self { name, toml: text.trim_end().to_owned() })
    }

    /// One bridge as JSON with the keys of a `[[bridge]]` table (`{"name": "…", "rooms": […]}`, or the long form
    /// with `"room": [{…}]`).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, Problems> {
        let what = "provisioned bridge";
        if !value.is_object() {
            return Err(problem(what, "a bridge is a JSON object with the keys of a [[bridge]] table", None));
        }
        let wrapped = serde_json::json!({ "bridge": [value] });
        let text = toml::to_string(&wrapped).map_err(|e| {
            let message = format!("cannot be written as TOML ({e}): leave out keys that are null");
            problem(what, message, None)
        })?;
        Self::from_toml(&text)
    }
}

impl Provisioned {
    /// The room addresses a stored bridge names (for listings; the check is [`Config::with_provisioned`]).
    pub fn rooms(toml: &str) -> Vec<String> {
        let Ok(root) = DeTable::parse(toml) else { return Vec::new() };
        let Some(DeValue::Array(items)) = root.get_ref().get("bridge").map(|v| v.get_ref()) else { return Vec::new() };
        let text = |v: &DeValue<'_>| match v {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        };
        let mut rooms = Vec::new();
        for item in items.iter() {
            let DeValue::Table(table) = item.get_ref() else { continue };
            if let Some(DeValue::Array(list)) = table.get("rooms").map(|v| v.get_ref()) {
                rooms.extend(list.iter().filter_map(|v| text(v.get_ref())));
            }
            if let Some(DeValue::Array(list)) = table.get("room").map(|v| v.get_ref()) {
                for room in list.iter() {
                    if let DeValue::Table(room) = room.get_ref() {
                        rooms.extend(room.get("room").and_then(|v| text(v.get_ref())));
                    }
                }
            }
        }
        rooms
    }
}

impl Config {
    /// This configuration (the file's) with the provisioned bridges after its own, as one configuration. A
    /// provisioned bridge that does not go with the file or an earlier one is left out and returned with its
    /// problems; an error is only a problem of the file itself in that company (it uses `bridge = [...]`, say).
    pub fn with_provisioned(&self, list: &[Provisioned]) -> Result<(Config, Vec<LeftOut>), Problems> {
        if list.is_empty() && self.provisioned.is_empty() {
            return Ok((self.clone(), Vec::new()));
        }
        let mut kept: Vec<&Provisioned> = list.iter().collect();
        let mut left: Vec<LeftOut> = Vec::new();
        loop {
            let mut text =
                String::with_capacity(self.source.text.len() + kept.iter().map(|p| p.toml.len() + 2).sum::<usize>());
            text.push_str(&self.source.text);
            let mut parts = Vec::with_capacity(kept.len());
            for bridge in &kept {
                text.push('\n');
                parts.push((text.len(), label(&bridge.name)));
                text.push_str(&bridge.toml);
                text.push('\n');
            }
            let problems = match Config::parse_parts(&text, &self.source.file, &parts) {
                // Only the bridges (and what is said of them) come from the reading: `[general]`, the accounts and
                // the rest stay this configuration's, as the caller has them.
                Ok(parsed) => {
                    let mut config = self.clone();
                    config.bridges = parsed.bridges;
                    config.notes = parsed.notes;
                    config.provisioned = kept.iter().map(|p| p.name.clone()).collect();
                    return Ok((config, left));
                }
                Err(problems) => problems,
            };
            let before = kept.len();
            for bridge in std::mem::take(&mut kept) {
                let label = label(&bridge.name);
                let theirs: Vec<Problem> = problems.0.iter().filter(|p| p.file == label).cloned().collect();
                if theirs.is_empty() {
                    kept.push(bridge);
                } else {
                    left.push(LeftOut { name: bridge.name.clone(), problems: Problems(theirs) });
                }
            }
            if kept.len() == before {
                return Err(problems);
            }
        }
    }

    /// Whether `candidate` may be provisioned beside `others` (the store's other bridges): the problems that would
    /// leave it out, or that it takes the name of a bridge of the file.
    pub fn check_provisioned(&self, others: &[Provisioned], candidate: &Provisioned) -> Result<Config, Problems> {
        if self.bridges.iter().any(|b| b.name == candidate.name && !self.provisioned.contains(&b.name)) {
            let message = format!(
                "the configuration file has a bridge named `{}`: a provisioned bridge may not take a name the file uses",
                candidate.name
            );
            return Err(problem(&label(&candidate.name), message, Some("name")));
        }
        let mut list: Vec<Provisioned> = others.iter().filter(|p| p.name != candidate.name).cloned().collect();
        list.push(candidate.clone());
        let (config, left) = self.with_provisioned(&list)?;
        match left.into_iter().find(|l| l.name == candidate.name) {
            Some(left) => Err(left.problems),
            None => Ok(config),
        }
    }

    /// The file's bridges: those not provisioned.
    pub fn is_from_file(&self, bridge: &str) -> bool {
        self.bridges.iter().any(|b| b.name == bridge) && !self.provisioned.contains(bridge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[accounts.fishroom.tuna]\ntoken_id = \"1\"\ntoken_key = \"k1\"\n\n\
        [accounts.fishroom.lug]\ntoken_id = \"2\"\ntoken_key = \"k2\"\n\n\
        [accounts.fishroom.cod]\ntoken_id = \"3\"\ntoken_key = \"k3\"\n\n\
        [[bridge]]\nname = \"fans\"\nrooms = [\"fishroom.tuna:general\", \"fishroom.lug:chat\"]\n";

    fn base() -> Config {
        Config::parse(FILE, "test.toml").unwrap()
    }

    fn json(value: serde_json::Value) -> Provisioned {
        Provisioned::from_json(&value).unwrap()
    }

    #[test]
    fn a_provisioned_bridge_runs_after_the_files_with_its_options() {
        let p = json(serde_json::json!({
            "name": "p",
            "room": [{"room": "fishroom.cod:talk", "format": "<{nick}> {text}"}, {"room": "fishroom.lug:chat", "direction": "out"}],
        }));
        assert!(p.toml.starts_with("[[bridge]]"), "{}", p.toml);
        let (config, left) = base().with_provisioned(std::slice::from_ref(&p)).unwrap();
        assert!(left.is_empty(), "{left:?}");
        let names: Vec<&str> = config.bridges.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["fans", "p"]);
        assert_eq!(config.bridges[1].rooms[1].direction, crate::config::Direction::Out);
        assert!(config.provisioned.contains("p") && !config.is_from_file("p") && config.is_from_file("fans"));
        assert_eq!(Provisioned::rooms(&p.toml), ["fishroom.cod:talk", "fishroom.lug:chat"]);
        // Merged again (the next change), the file's text is the base, not the merged one.
        let (again, _) = config.with_provisioned(std::slice::from_ref(&p)).unwrap();
        assert_eq!(again.bridges.len(), 2);
    }

    #[test]
    fn every_problem_names_the_bridge_its_line_and_its_key() {
        let bad = json(serde_json::json!({
            "name": "bad",
            "rooms": ["fishroom.cod:talk", "fishroom.nobody:x"],
            "formatt": "{text}",
        }));
        let problems = base().check_provisioned(&[], &bad).unwrap_err();
        let fields: Vec<Option<&str>> = problems.0.iter().map(|p| p.field.as_deref()).collect();
        assert!(fields.contains(&Some("rooms[1]")), "{problems}");
        assert!(fields.contains(&Some("formatt")), "{problems}");
        assert!(problems.0.iter().all(|p| p.file == "provisioned bridge `bad`"), "{problems}");
        assert!(problems.to_string().contains("nobody"), "{problems}");
        // A line of the provisioned text, not of the file.
        assert!(problems.0.iter().all(|p| p.line <= bad.toml.lines().count()), "{problems}");
    }

    #[test]
    fn a_name_the_file_uses_and_a_clash_with_another_provisioned_bridge_are_refused() {
        let file_name = json(serde_json::json!({"name": "fans", "rooms": ["fishroom.cod:talk", "fishroom.lug:chat"]}));
        let problems = base().check_provisioned(&[], &file_name).unwrap_err();
        assert_eq!(problems.0[0].field.as_deref(), Some("name"), "{problems}");
        // cod receives from `talk` in one; a second receiving room on the same token clashes (Fishroom's one queue).
        let first = json(serde_json::json!({"name": "one", "rooms": ["fishroom.cod:talk", "fishroom.lug:chat"]}));
        let second = json(serde_json::json!({"name": "two", "rooms": ["fishroom.cod:other", "fishroom.tuna:general"]}));
        let problems = base().check_provisioned(std::slice::from_ref(&first), &second).unwrap_err();
        assert!(problems.to_string().contains("two rooms"), "{problems}");
        // Stored anyway (by an older build, say), the later one is left out and the earlier runs.
        let (config, left) = base().with_provisioned(&[first, second]).unwrap();
        assert_eq!(config.bridges.len(), 2);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].name, "two");
    }

    #[test]
    fn only_one_bridge_table_can_be_provisioned() {
        for (text, says) in [
            ("[general]\nlog_level = \"debug\"\n[[bridge]]\nname = \"x\"\n", "cannot be provisioned"),
            ("[accounts.fishroom.evil]\ntoken_id = \"9\"\n", "cannot be provisioned"),
            ("[[bridge]]\nname = \"x\"\n[[bridge]]\nname = \"y\"\n", "one bridge at a time"),
            ("bridge = 3\n", "[[bridge]]"),
            ("[[bridge]]\nrooms = []\n", "needs a `name`"),
            ("[[bridge]\n", ""),
        ] {
            let problems = Provisioned::from_toml(text).unwrap_err();
            assert!(problems.to_string().contains(says), "{text}: {problems}");
        }
        let problems = Provisioned::from_json(&serde_json::json!({"name": "x", "rooms": null})).unwrap_err();
        assert!(problems.to_string().contains("null"), "{problems}");
        assert!(Provisioned::from_json(&serde_json::json!(["x"])).is_err());
    }

    #[test]
    fn a_file_with_accounts_and_no_bridge_runs_provisioned_bridges_only() {
        let accounts = FILE.split("[[bridge]]").next().unwrap();
        let config = Config::parse(accounts, "test.toml").unwrap();
        assert!(config.warnings().iter().any(|w| w.contains("only bridges provisioned")), "{:?}", config.warnings());
        let p = json(serde_json::json!({"name": "p", "rooms": ["fishroom.cod:talk", "fishroom.lug:chat"]}));
        let (merged, left) = config.with_provisioned(&[p]).unwrap();
        assert!(left.is_empty() && merged.bridges.len() == 1);
        let without_store = format!("[general]\ndurable = false\n{accounts}");
        assert!(Config::parse(&without_store, "test.toml").is_err(), "without a store nothing could run");
    }
}
