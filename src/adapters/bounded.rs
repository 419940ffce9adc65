//! A JSON array read with a cap on its items, counted as they are read: a frame of millions of tiny items costs
//! many times its bytes once built (two bytes of `0,` became a 48-byte item), so past what a platform sends in
//! one frame the array is refused before more are built.

use serde::Deserialize;

/// At most `MAX` items of `T`; more is an error.
#[derive(Debug)]
pub struct Bounded<T, const MAX: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Bounded<T, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T, const MAX: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> serde::de::Visitor<'de> for Items<T, MAX> {
            type Value = Bounded<T, MAX>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an array of at most {MAX} items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<T>()? {
                    if items.len() == MAX {
                        return Err(serde::de::Error::custom(format!("more than {MAX} items in one frame")));
                    }
                    items.push(item);
                }
                Ok(Bounded(items))
            }
        }
        deserializer.deserialize_seq(Items::<T, MAX>(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn an_array_past_its_cap_is_refused() {
        assert_eq!(serde_json::from_str::<Bounded<u8, 3>>("[1,2,3]").unwrap().0, [1, 2, 3]);
        let refused = serde_json::from_str::<Bounded<u8, 3>>("[1,2,3,4]").err().unwrap().to_string();
        assert!(refused.contains("more than 3 items"), "{refused}");
    }
}
