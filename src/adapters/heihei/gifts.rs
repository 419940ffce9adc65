//! Gift names (issue #33 §2): a live room's gift message names its gift (`gift.name`, seed 001 "礼物消息更改"), an IM
//! gift carries only `giftId` (seed 001 "IM消息类型"). The names are learned from the live gifts seen and from the
//! gift list (`gift-info`, seed 001 "礼物列表": `gifts[].id`, `name`), read once a session; an id never named falls
//! back to `gift #<id>`. Bounded: a server sending endless ids fills [`KEPT`] and learns no more.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;

/// Gift names kept per account.
pub const KEPT: usize = 2_000;
/// The longest gift name kept (a longer one is cut).
const NAME_CHARS: usize = 40;

#[derive(Debug, Default)]
pub struct GiftNames(Mutex<HashMap<u64, String>>);

impl GiftNames {
    /// Remembers `id`'s name (a blank name is not one).
    pub fn learn(&self, id: u64, name: &str) {
        let name: String = name.chars().filter(|c| !c.is_control()).take(NAME_CHARS).collect();
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let mut names = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.len() < KEPT || names.contains_key(&id) {
            names.insert(id, name.to_owned());
        }
    }

    pub fn name(&self, id: u64) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned()
    }

    /// `id`'s name, or `gift #<id>` where none was learned.
    pub fn name_or_id(&self, id: u64) -> String {
        self.name(id).unwrap_or_else(|| format!("gift #{id}"))
    }

    /// Learns every gift of a `gift-info` answer; how many.
    pub fn learn_list(&self, answer: &GiftList) -> usize {
        let mut learned = 0;
        for gift in &answer.gifts {
            if let (Some(id), Some(name)) = (gift.id, &gift.name) {
                self.learn(id, name);
                learned += 1;
            }
        }
        learned
    }
}

/// The answer of `gift-info`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GiftList {
    pub errorcode: i64,
    pub errormsg: String,
    pub gifts: Vec<GiftRef>,
}

/// A gift as the live gift message and the gift list name it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GiftRef {
    #[serde(deserialize_with = "super::wire::lenient_u64")]
    pub id: Option<u64>,
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = include_str!("../../../tests/fixtures/wire/heihei/gift_info_answer.json");

    #[test]
    fn the_seed_gift_list_is_learned_and_bounded() {
        let names = GiftNames::default();
        let list: GiftList = serde_json::from_str(crate::corpus::frames(LIST)[0]).unwrap();
        assert_eq!(names.learn_list(&list), 2);
        assert_eq!(names.name_or_id(123), "小黄瓜");
        assert_eq!(names.name_or_id(113), "gift #113");
        names.learn(7, "  \n ");
        assert_eq!(names.name(7), None, "a blank name is none");
        for id in 1000..(1000 + 3 * KEPT as u64) {
            names.learn(id, "x");
        }
        assert_eq!(names.0.lock().unwrap().len(), KEPT);
        names.learn(123, "改名");
        assert_eq!(names.name_or_id(123), "改名", "a known id is renamed even when full");
    }
}
