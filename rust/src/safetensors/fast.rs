//! Fast typed reading of a well-formed header: tensor entries go straight
//! into `Typed` without an intermediate `serde_json::Value` per field. This
//! is the path every real file takes (`inspect` reads the headers of
//! hundreds of shards). It only answers "well-typed or not": on any failure
//! the caller re-reads the text with `raw` + `validate::from_entries`, whose
//! errors name the tensor and field at fault.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::dtype::Dtype;
use super::validate::{Fields, Typed, METADATA_KEY};

/// `Some` when `text` is a well-typed header without duplicate keys.
pub(crate) fn read(text: &str) -> Option<Fields> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = HeaderVisitor.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let mut seen = HashSet::with_capacity(fields.tensors.len());
    if !fields.tensors.iter().all(|t| seen.insert(t.name.as_str())) {
        return None;
    }
    Some(fields)
}

struct HeaderVisitor;

impl<'de> DeserializeSeed<'de> for HeaderVisitor {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a safetensors header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut tensors = Vec::with_capacity(map.size_hint().unwrap_or(0));
        let mut metadata: Option<Option<Metadata>> = None;
        while let Some(name) = map.next_key::<String>()? {
            if name == METADATA_KEY {
                if metadata.is_some() {
                    return Err(A::Error::custom("duplicate __metadata__"));
                }
                metadata = Some(map.next_value()?);
                continue;
            }
            let t: TensorFields = map.next_value()?;
            tensors.push(Typed {
                name,
                dtype: t.dtype,
                shape: t.shape,
                begin: t.begin,
                end: t.end,
            });
        }
        Ok(Fields {
            tensors,
            metadata: metadata.flatten().map(|m| m.0),
        })
    }
}

/// `__metadata__`: string -> string, duplicates rejected.
struct Metadata(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if out.insert(k, v).is_some() {
                        return Err(A::Error::custom("duplicate metadata key"));
                    }
                }
                Ok(Metadata(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct TensorFields {
    dtype: Dtype,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

enum Field {
    Dtype,
    Shape,
    Offsets,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
                Ok(match s {
                    "dtype" => Field::Dtype,
                    "shape" => Field::Shape,
                    "data_offsets" => Field::Offsets,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

struct DtypeField(Dtype);

impl<'de> Deserialize<'de> for DtypeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DtypeField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dtype")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DtypeField, E> {
                Dtype::parse(s)
                    .map(DtypeField)
                    .ok_or_else(|| E::custom("unknown dtype"))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for TensorFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TensorFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tensor object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TensorFields, A::Error> {
                let mut dtype = None;
                let mut shape = None;
                let mut offsets = None;
                while let Some(field) = map.next_key::<Field>()? {
                    let dup = match field {
                        Field::Dtype => dtype.replace(map.next_value::<DtypeField>()?.0).is_some(),
                        Field::Shape => shape.replace(map.next_value::<Vec<u64>>()?).is_some(),
                        Field::Offsets => {
                            offsets.replace(map.next_value::<(u64, u64)>()?).is_some()
                        }
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            false
                        }
                    };
                    if dup {
                        return Err(A::Error::custom("duplicate field"));
                    }
                }
                match (dtype, shape, offsets) {
                    (Some(dtype), Some(shape), Some((begin, end))) => Ok(TensorFields {
                        dtype,
                        shape,
                        begin,
                        end,
                    }),
                    _ => Err(A::Error::custom("missing field")),
                }
            }
        }
        d.deserialize_map(V)
    }
}
