//! The mailbox's user actions (issue #33 §2): someone likes or follows the bridge's account, or pays it — packets
//! `@*name>avatar>gender>'<action>>>time>colour` (seed 002 "邮箱与用户动作": `'*` a like, `'^` a follow; the protocol
//! notes add `'$` a payment from the public clients). They become notices of the room the account is in, which a
//! room takes with `events = [..., "notice"]`. Other mailbox packets stay unknown kinds.

/// `(who, what they did)` for a user-action packet; `None` for anything else.
pub fn action(raw: &str) -> Option<(String, &'static str)> {
    let rest = raw.strip_prefix("@*")?;
    let fields: Vec<&str> = rest.split('>').collect();
    let what = match fields.get(3).copied()? {
        "'*" => "liked",
        "'^" => "followed",
        "'$" => "paid",
        _ => return None,
    };
    let name: String = super::wire::unescape(fields.first()?).chars().filter(|c| !c.is_control()).take(40).collect();
    let name = name.trim();
    (!name.is_empty()).then(|| (name.to_owned(), what))
}

#[cfg(test)]
mod tests {
    const SEED: &str = include_str!("../../../tests/fixtures/wire/iirose/seed_receive.txt");

    #[test]
    fn the_seeds_like_and_follow_are_read_and_other_packets_are_not() {
        let mailbox: Vec<&str> = crate::corpus::frames(SEED).into_iter().filter(|l| l.starts_with("@*")).collect();
        assert_eq!(super::action(mailbox[0]), Some(("anata baka？".to_owned(), "liked")));
        assert_eq!(super::action(mailbox[1]), Some(("anata baka？".to_owned(), "followed")));
        assert_eq!(super::action("@*someone>cartoon/1>2>'?>>1>x"), None, "an action not known");
        assert_eq!(super::action("@*notice text>bg>1762613079"), None, "a room notice");
        assert_eq!(super::action("\"1>2>3"), None);
    }
}
