//! Which key a position in the source belongs to, as a path (`bridge[2].room[0].direction`): what a problem says
//! besides its line and column, for a client that sent JSON and has no lines to look at.

use toml::de::{DeTable, DeValue};

/// The path of the innermost key or array item whose key or value covers `offset`; none outside every key. (A
/// table's or an array of tables' own span need not cover its items, `[[bridge]]` written in several places: the
/// items are looked into whatever it says.)
pub(crate) fn field_at(root: &DeTable<'_>, offset: usize) -> Option<String> {
    in_table(root, offset)
}

fn in_table(table: &DeTable<'_>, offset: usize) -> Option<String> {
    for (key, value) in table.iter() {
        let key_text: &str = key.get_ref();
        if key.span().contains(&offset) {
            return Some(key_text.to_owned());
        }
        match in_value(value.get_ref(), offset) {
            Some(inner) if inner.starts_with('[') => return Some(format!("{key_text}{inner}")),
            Some(inner) => return Some(format!("{key_text}.{inner}")),
            None if value.span().contains(&offset) => return Some(key_text.to_owned()),
            None => {}
        }
    }
    None
}

fn in_value(value: &DeValue<'_>, offset: usize) -> Option<String> {
    match value {
        DeValue::Table(table) => in_table(table, offset),
        DeValue::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| match in_value(item.get_ref(), offset) {
                Some(inner) if inner.starts_with('[') => Some(format!("[{index}]{inner}")),
                Some(inner) => Some(format!("[{index}].{inner}")),
                None => item.span().contains(&offset).then(|| format!("[{index}]")),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(source: &str, at: &str) -> Option<String> {
        let root = DeTable::parse(source).unwrap();
        field_at(root.get_ref(), source.find(at).unwrap())
    }

    #[test]
    fn names_keys_tables_and_items() {
        let source = "[general]\nlog_level = \"info\"\n\n[[bridge]]\nname = \"a\"\nrooms = [\"x\", \"y\"]\n\n[[bridge]]\nname = \"b\"\n[[bridge.room]]\nroom = \"z\"\ndirection = \"sideways\"\n";
        assert_eq!(path(source, "log_level").as_deref(), Some("general.log_level"));
        assert_eq!(path(source, "\"y\"").as_deref(), Some("bridge[0].rooms[1]"));
        assert_eq!(path(source, "\"sideways\"").as_deref(), Some("bridge[1].room[0].direction"));
        assert_eq!(path(source, "\"b\"").as_deref(), Some("bridge[1].name"));
    }
}
