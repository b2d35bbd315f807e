//! JSON text -> ordered key/value entries, before any safetensors rule is
//! applied. A custom visitor is used instead of `serde_json::Value` because a
//! `Value` map silently keeps the last of two equal keys; a header naming the
//! same tensor twice must be rejected, not half-read.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON object in file order, with the first repeated key remembered.
#[derive(Debug, Default)]
pub(crate) struct Object<V> {
    pub entries: Vec<(String, V)>,
    pub duplicate: Option<String>,
}

/// Any JSON value, where objects keep order and duplicates and every other
/// kind is only described (that is all an error message needs).
#[derive(Debug)]
pub(crate) enum Entry {
    Object(Object<Value>),
    Other(&'static str),
}

/// The whole header: must be an object of `Entry`.
pub(crate) type Header = Object<Entry>;

fn visit_object<'de, A, V>(mut map: A) -> Result<Object<V>, A::Error>
where
    A: MapAccess<'de>,
    V: Deserialize<'de>,
{
    let mut seen = HashSet::new();
    let mut out = Object {
        entries: Vec::with_capacity(map.size_hint().unwrap_or(0)),
        duplicate: None,
    };
    while let Some(key) = map.next_key::<String>()? {
        let value = map.next_value::<V>()?;
        if !seen.insert(key.clone()) {
            out.duplicate.get_or_insert(key);
            continue;
        }
        out.entries.push((key, value));
    }
    Ok(out)
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Header, A::Error> {
        visit_object(map)
    }
}

/// Deserializes only objects; any other top-level kind is a serde "invalid
/// type" error, which `parse_header` reports as `NotObject`.
pub(crate) struct HeaderSeed;

impl<'de> de::DeserializeSeed<'de> for HeaderSeed {
    type Value = Header;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Header, D::Error> {
        d.deserialize_map(HeaderVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
        visit_object(map).map(Entry::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry::Other("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
        Ok(Entry::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry, E> {
        Ok(Entry::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry, E> {
        Ok(Entry::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry, E> {
        Ok(Entry::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Entry, E> {
        Ok(Entry::Other("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
        Ok(Entry::Other("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Entry, E> {
        Ok(Entry::Other("null"))
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

/// Short description of a JSON value's kind for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a number",
        Value::Number(n) if n.is_i64() => "a negative number",
        Value::Number(_) => "a fraction or a number over 2^64",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
