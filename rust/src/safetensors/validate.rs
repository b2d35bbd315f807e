//! Header fields -> checked `SafetensorsHeader`: shape arithmetic (checked,
//! never wrapping), offsets, and the format's rule that tensors tile the data
//! section exactly (no overlap, no gap). Also the careful reading of ordered
//! JSON entries (`from_entries`) that names the field at fault when the fast
//! typed path (`fast.rs`) rejects a header.

use std::collections::BTreeMap;

use serde_json::Value;

use super::dtype::Dtype;
use super::error::HeaderError;
use super::raw::{self, Entry, Header, Object};
use super::{SafetensorsHeader, TensorInfo};

pub(crate) const METADATA_KEY: &str = "__metadata__";

/// One tensor's fields, well-typed but not yet checked against each other.
#[derive(Debug)]
pub(crate) struct Typed {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub begin: u64,
    pub end: u64,
}

/// A header's fields, well-typed; `finish` applies the format's rules.
#[derive(Debug)]
pub(crate) struct Fields {
    pub tensors: Vec<Typed>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Longest rendering of an offending JSON value quoted in an error.
const SHOWN_VALUE_CHARS: usize = 40;

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= SHOWN_VALUE_CHARS {
        return s;
    }
    let cut: String = s.chars().take(SHOWN_VALUE_CHARS).collect();
    format!("{cut}...")
}

fn field_error(tensor: &str, reason: String) -> HeaderError {
    HeaderError::Field {
        tensor: tensor.to_owned(),
        reason,
    }
}

fn get<'a>(obj: &'a Object<Value>, tensor: &str, key: &str) -> Result<&'a Value, HeaderError> {
    obj.entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            field_error(
                tensor,
                format!(
                    "missing field {key:?}; every tensor needs \"dtype\", \"shape\" and \"data_offsets\""
                ),
            )
        })
}

/// A list of non-negative 64-bit integers, or an error naming the field and
/// the first offending element.
fn u64_list(v: &Value, tensor: &str, key: &str) -> Result<Vec<u64>, HeaderError> {
    let Value::Array(items) = v else {
        return Err(field_error(
            tensor,
            format!(
                "{key:?} must be a list of non-negative integers, got {}",
                raw::kind(v)
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_u64().ok_or_else(|| {
                field_error(
                    tensor,
                    format!(
                        "{key:?} must hold non-negative integers, element {i} is {} ({})",
                        show(item),
                        raw::kind(item)
                    ),
                )
            })
        })
        .collect()
}

fn parse_metadata(entry: Entry) -> Result<Option<BTreeMap<String, String>>, HeaderError> {
    let obj = match entry {
        Entry::Other("null") => return Ok(None),
        Entry::Other(kind) => {
            return Err(HeaderError::Metadata {
                reason: format!("must be an object of string -> string, got {kind}"),
            })
        }
        Entry::Object(obj) => obj,
    };
    if let Some(key) = obj.duplicate {
        return Err(HeaderError::Metadata {
            reason: format!("duplicate key {key:?}"),
        });
    }
    let mut out = BTreeMap::new();
    for (key, value) in obj.entries {
        let Value::String(s) = value else {
            return Err(HeaderError::Metadata {
                reason: format!(
                    "value of {key:?} must be a string, got {}",
                    raw::kind(&value)
                ),
            });
        };
        out.insert(key, s);
    }
    Ok(Some(out))
}

/// Reads one tensor's fields, naming the first that is missing or ill-typed.
fn typed_tensor(name: String, entry: Entry) -> Result<Typed, HeaderError> {
    let obj = match entry {
        Entry::Object(obj) => obj,
        Entry::Other(kind) => {
            return Err(field_error(
                &name,
                format!(
                    "must be an object with \"dtype\", \"shape\" and \"data_offsets\", got {kind}"
                ),
            ))
        }
    };
    if let Some(key) = &obj.duplicate {
        return Err(field_error(&name, format!("duplicate field {key:?}")));
    }

    let dtype = match get(&obj, &name, "dtype")? {
        Value::String(s) => Dtype::parse(s).ok_or_else(|| HeaderError::UnknownDtype {
            tensor: name.clone(),
            dtype: s.clone(),
            valid: Dtype::valid_list(),
        })?,
        other => {
            return Err(field_error(
                &name,
                format!("\"dtype\" must be a string, got {}", raw::kind(other)),
            ))
        }
    };
    let shape = u64_list(get(&obj, &name, "shape")?, &name, "shape")?;
    let offsets = u64_list(get(&obj, &name, "data_offsets")?, &name, "data_offsets")?;
    let [begin, end] = offsets[..] else {
        return Err(field_error(
            &name,
            format!(
                "\"data_offsets\" must be [begin, end], got {} numbers",
                offsets.len()
            ),
        ));
    };

    Ok(Typed {
        name,
        dtype,
        shape,
        begin,
        end,
    })
}

/// Checks one tensor on its own (everything but its neighbours).
fn check_tensor(t: Typed, data_section: Option<u64>) -> Result<TensorInfo, HeaderError> {
    let Typed {
        name,
        dtype,
        shape,
        begin,
        end,
    } = t;
    let numel = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| HeaderError::ShapeOverflow {
            tensor: name.clone(),
            shape: shape.clone(),
        })?;
    // u64 * u32 always fits in u128, so this product cannot overflow.
    let bits = u128::from(numel) * u128::from(dtype.bits());
    if !bits.is_multiple_of(8) {
        return Err(HeaderError::Misaligned {
            tensor: name,
            dtype: dtype.to_string(),
            numel,
            bits,
        });
    }
    let Some(span) = end.checked_sub(begin) else {
        return Err(HeaderError::OffsetsReversed {
            tensor: name,
            begin,
            end,
        });
    };
    let expected = bits / 8;
    if expected != u128::from(span) {
        return Err(HeaderError::SizeMismatch {
            tensor: name,
            dtype: dtype.to_string(),
            shape,
            expected,
            begin,
            end,
            actual: span,
        });
    }
    if let Some(data_size) = data_section {
        if end > data_size {
            return Err(HeaderError::BeyondData {
                tensor: name,
                end,
                data_size,
            });
        }
    }
    Ok(TensorInfo {
        name,
        dtype,
        shape,
        data_offsets: (begin, end),
        numel,
    })
}

/// Sorts tensors into file order and checks they tile `[0, covered)`
/// exactly; returns `covered`.
fn check_tiling(tensors: &mut [TensorInfo]) -> Result<u64, HeaderError> {
    tensors.sort_by(|a, b| {
        a.data_offsets
            .cmp(&b.data_offsets)
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut covered = 0u64;
    let mut last: Option<&TensorInfo> = None;
    for t in tensors.iter() {
        let (begin, end) = t.data_offsets;
        if begin < covered {
            // Sorted by begin, so the tensor reaching furthest so far is the
            // previous one unless it was empty; either way `last` ends at `covered`.
            let other = last.map(|o| (o.name.clone(), o.data_offsets));
            let (other, (other_begin, other_end)) = other.unwrap_or_default();
            return Err(HeaderError::Overlap {
                tensor: t.name.clone(),
                begin,
                end,
                other,
                other_begin,
                other_end,
            });
        }
        if begin > covered {
            return Err(HeaderError::Gap {
                from: covered,
                to: begin,
                tensor: t.name.clone(),
            });
        }
        covered = end;
        last = Some(t);
    }
    Ok(covered)
}

/// Reads ordered JSON entries into typed fields, with precise errors.
pub(crate) fn from_entries(header: Header) -> Result<Fields, HeaderError> {
    if let Some(key) = header.duplicate {
        return Err(HeaderError::DuplicateKey { key });
    }
    let mut metadata = None;
    let mut tensors = Vec::with_capacity(header.entries.len());
    for (name, entry) in header.entries {
        if name == METADATA_KEY {
            metadata = parse_metadata(entry)?;
        } else {
            tensors.push(typed_tensor(name, entry)?);
        }
    }
    Ok(Fields { tensors, metadata })
}

/// Applies every arithmetic and layout rule to well-typed header fields.
pub(crate) fn finish(
    fields: Fields,
    header_size: u64,
    data_section: Option<u64>,
) -> Result<SafetensorsHeader, HeaderError> {
    let mut tensors = fields
        .tensors
        .into_iter()
        .map(|t| check_tensor(t, data_section))
        .collect::<Result<Vec<_>, _>>()?;
    let covered = check_tiling(&mut tensors)?;
    if let Some(data_size) = data_section {
        if covered != data_size {
            return Err(HeaderError::Uncovered { covered, data_size });
        }
    }

    let mut parameter_count = 0u128;
    let mut parameters_by_dtype = BTreeMap::new();
    for t in &tensors {
        parameter_count += u128::from(t.numel);
        *parameters_by_dtype.entry(t.dtype).or_insert(0u128) += u128::from(t.numel);
    }
    Ok(SafetensorsHeader {
        header_size,
        data_size: covered,
        tensors,
        metadata: fields.metadata,
        parameter_count,
        parameters_by_dtype,
    })
}
