//! Property tests of the safetensors header parser: arbitrary and mutated
//! input never panics, and any header a writer could produce parses back with
//! the exact parameter count computed independently here.

use std::collections::BTreeMap;

use _core::safetensors::{parse_header, Dtype, SafetensorsHeader, MAX_HEADER_BYTES};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

/// What a writer knows about one tensor before laying it out.
#[derive(Clone, Debug)]
struct Spec {
    dtype: Dtype,
    shape: Vec<u64>,
}

impl Spec {
    fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
    fn bytes(&self) -> u64 {
        self.numel() * u64::from(self.dtype.bits()) / 8
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(Dtype::ALL.to_vec()),
        prop::collection::vec(0u64..7, 0..4),
    )
        .prop_map(|(dtype, mut shape)| {
            // Sub-byte dtypes must fill whole bytes; a trailing 8 always does.
            if !(shape.iter().product::<u64>() * u64::from(dtype.bits())).is_multiple_of(8) {
                shape.push(8);
            }
            Spec { dtype, shape }
        })
}

/// A header as bytes: JSON keys in a shuffled order, tensors laid out in
/// another, optional metadata. Returns the bytes and the specs by name.
fn file(
    specs: &[Spec],
    layout: &[usize],
    metadata: bool,
) -> (Vec<u8>, u64, BTreeMap<String, Spec>) {
    let mut offsets = vec![(0u64, 0u64); specs.len()];
    let mut at = 0;
    for &i in layout {
        let end = at + specs[i].bytes();
        offsets[i] = (at, end);
        at = end;
    }
    let mut obj = Map::new();
    if metadata {
        obj.insert("__metadata__".into(), json!({"format": "pt", "note": "é"}));
    }
    let mut by_name = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        let name = format!("model.layers.{i}.weight");
        obj.insert(
            name.clone(),
            json!({"dtype": s.dtype.as_str(), "shape": s.shape, "data_offsets": [offsets[i].0, offsets[i].1]}),
        );
        by_name.insert(name, s.clone());
    }
    let mut text = Value::Object(obj).to_string();
    // Writers pad the JSON with spaces to an 8-byte boundary.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    (bytes, at, by_name)
}

fn layouts() -> impl Strategy<Value = (Vec<Spec>, Vec<usize>, bool)> {
    prop::collection::vec(spec(), 0..12).prop_flat_map(|specs| {
        let n = specs.len();
        (
            Just(specs),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            any::<bool>(),
        )
    })
}

/// Invariants any accepted header must satisfy, whatever the input was.
fn check_invariants(h: &SafetensorsHeader, file_size: Option<u64>) {
    let mut at = 0u64;
    let mut sum = 0u128;
    for t in &h.tensors {
        assert_eq!(t.data_offsets.0, at, "tensors must tile the data section");
        let bits = u128::from(t.numel) * u128::from(t.dtype.bits());
        assert_eq!(bits % 8, 0);
        assert_eq!(bits / 8, u128::from(t.data_offsets.1 - t.data_offsets.0));
        at = t.data_offsets.1;
        sum += u128::from(t.numel);
    }
    assert_eq!(at, h.data_size);
    assert_eq!(sum, h.parameter_count);
    assert_eq!(h.parameters_by_dtype.values().sum::<u128>(), sum);
    assert!(h.header_size <= MAX_HEADER_BYTES);
    if let Some(size) = file_size {
        assert_eq!(8 + h.header_size + h.data_size, size);
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Delete(Index, usize),
    Insert(Index, Vec<u8>),
    Length(u64),
    Digit(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<u64>().prop_map(Mutation::Length),
        (
            any::<Index>(),
            prop::sample::select(b"-.e9{}[]\",:0".to_vec())
        )
            .prop_map(|(i, c)| Mutation::Digit(i, c)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, x) => {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Delete(i, n) => {
            let i = i.index(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Insert(i, b) => {
            let i = i.index(bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Length(n) => {
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&n.to_le_bytes());
            }
        }
        Mutation::Digit(i, c) => {
            let i = i.index(bytes.len());
            bytes[i] = *c;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256),
                                file_size in any::<Option<u64>>()) {
        if let Ok(h) = parse_header(&data, file_size) {
            check_invariants(&h, file_size);
        }
    }

    #[test]
    fn random_json_after_a_valid_length_never_panics(body in prop::collection::vec(any::<u8>(), 0..256),
                                                     extra in 0u64..64) {
        let mut data = (body.len() as u64).to_le_bytes().to_vec();
        data.extend_from_slice(&body);
        let size = data.len() as u64 + extra;
        if let Ok(h) = parse_header(&data, Some(size)) {
            check_invariants(&h, Some(size));
        }
    }

    #[test]
    fn valid_headers_round_trip_with_exact_counts((specs, layout, metadata) in layouts()) {
        let (bytes, data_size, by_name) = file(&specs, &layout, metadata);
        let file_size = bytes.len() as u64 + data_size;
        let h = parse_header(&bytes, Some(file_size)).expect("a valid header must parse");
        check_invariants(&h, Some(file_size));

        let expected: u128 = specs.iter().map(|s| u128::from(s.numel())).sum();
        prop_assert_eq!(h.parameter_count, expected);
        let mut by_dtype = BTreeMap::new();
        for s in &specs {
            *by_dtype.entry(s.dtype).or_insert(0u128) += u128::from(s.numel());
        }
        prop_assert_eq!(&h.parameters_by_dtype, &by_dtype);
        prop_assert_eq!(h.data_size, data_size);
        prop_assert_eq!(h.tensors.len(), specs.len());
        for t in &h.tensors {
            let s = &by_name[&t.name];
            prop_assert_eq!(t.dtype, s.dtype);
            prop_assert_eq!(&t.shape, &s.shape);
        }
        prop_assert_eq!(h.metadata.is_some(), metadata);
        // Without file_size the same header parses to the same result.
        prop_assert_eq!(parse_header(&bytes, None).expect("parses without size"), h);
    }

    #[test]
    fn mutated_headers_never_panic((specs, layout, metadata) in layouts(),
                                   muts in prop::collection::vec(mutation(), 1..4),
                                   size_delta in -2i64..3) {
        let (mut bytes, data_size, _) = file(&specs, &layout, metadata);
        for m in &muts {
            apply(&mut bytes, m);
        }
        let size = (bytes.len() as u64 + data_size).checked_add_signed(size_delta);
        if let Ok(h) = parse_header(&bytes, size) {
            check_invariants(&h, size);
        }
        if let Ok(h) = parse_header(&bytes, None) {
            check_invariants(&h, None);
        }
    }
}
