//! Unit tests of the header parser: one per rule, each asserting the error
//! names the tensor or field at fault.

use serde::de::DeserializeSeed;

use super::*;

/// `8-byte length + json`, as a writer would produce it.
fn framed(json: &str) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out
}

fn parse(json: &str, data_size: Option<u64>) -> Result<SafetensorsHeader, HeaderError> {
    let bytes = framed(json);
    let file_size = data_size.map(|d| bytes.len() as u64 + d);
    parse_header(&bytes, file_size)
}

fn err(json: &str, data_size: Option<u64>) -> String {
    match parse(json, data_size) {
        Ok(h) => panic!("expected an error for {json}, got {h:?}"),
        Err(e) => e.to_string(),
    }
}

const TWO: &str = r#"{"__metadata__":{"format":"pt"},
  "b":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]},
  "a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}"#;

#[test]
fn parses_tensors_in_file_order_with_counts() {
    let h = parse(TWO, Some(32)).unwrap();
    assert_eq!(h.header_size, TWO.len() as u64);
    assert_eq!(h.data_size, 32);
    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(h.tensors[1].shape, [2, 3]);
    assert_eq!(h.tensors[1].data_offsets, (8, 32));
    assert_eq!(h.parameter_count, 10);
    assert_eq!(h.parameters_by_dtype[&Dtype::F32], 6);
    assert_eq!(h.parameters_by_dtype[&Dtype::BF16], 4);
    assert_eq!(h.metadata.unwrap()["format"], "pt");
}

#[test]
fn empty_header_and_scalars_and_zero_sized_tensors() {
    let h = parse("{}      ", Some(0)).unwrap();
    assert_eq!((h.parameter_count, h.data_size, h.tensors.len()), (0, 0, 0));
    let h = parse(
        r#"{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},
            "z":{"dtype":"F16","shape":[0,5],"data_offsets":[8,8]}}"#,
        Some(8),
    )
    .unwrap();
    assert_eq!(h.parameter_count, 1);
    assert_eq!(h.tensors[1].numel, 0);
}

#[test]
fn sub_byte_dtypes_count_stored_elements() {
    let h = parse(
        r#"{"q":{"dtype":"F4","shape":[4,2],"data_offsets":[0,4]},
            "r":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[4,7]}}"#,
        Some(7),
    )
    .unwrap();
    assert_eq!(h.parameter_count, 12);
    let e = err(
        r#"{"q":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
        None,
    );
    assert!(e.contains("\"q\"") && e.contains("whole bytes"), "{e}");
}

#[test]
fn header_length_validates_prefix() {
    assert_eq!(header_length(&framed("{}")).unwrap(), 10);
    assert!(header_length(&[1, 2, 3])
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    let huge = (MAX_HEADER_BYTES + 1).to_le_bytes();
    assert!(header_length(&huge)
        .unwrap_err()
        .to_string()
        .contains("limit"));
    assert!(header_length(&u64::MAX.to_le_bytes()).is_err());
}

#[test]
fn length_beyond_file_or_truncated_input() {
    let bytes = framed(TWO);
    let e = parse_header(&bytes, Some(20)).unwrap_err().to_string();
    assert!(e.contains("longer") || e.contains("file_size"), "{e}");
    let e = parse_header(&bytes[..8], Some(bytes.len() as u64 + 100))
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    let e = parse_header(&bytes[..8], Some(30)).unwrap_err().to_string();
    assert!(e.contains("beyond the end"), "{e}");
}

#[test]
fn bad_utf8_and_bad_json_and_non_object() {
    let mut bytes = framed(r#"{"a":1}"#);
    bytes[10] = 0xff;
    assert!(parse_header(&bytes, None)
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
    assert!(err(r#"{"a":"#, None).contains("not valid JSON"));
    assert!(err(r#"{} {}"#, None).contains("not valid JSON"));
    assert!(err("", None).contains("empty"));
    assert!(err("[1,2]", None).contains("got an array"));
    assert!(err("\"x\"", None).contains("got a string"));
}

#[test]
fn duplicate_keys_are_rejected() {
    let e = err(
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},
            "a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
        None,
    );
    assert!(e.contains("duplicate key \"a\""), "{e}");
    let e = err(
        r#"{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
        None,
    );
    assert!(
        e.contains("\"a\"") && e.contains("duplicate field \"dtype\""),
        "{e}"
    );
}

#[test]
fn missing_and_ill_typed_fields_name_the_tensor_and_field() {
    let cases = [
        (
            r#"{"t":{"shape":[1],"data_offsets":[0,1]}}"#,
            "missing field \"dtype\"",
        ),
        (
            r#"{"t":{"dtype":"U8","data_offsets":[0,1]}}"#,
            "missing field \"shape\"",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[1]}}"#,
            "missing field \"data_offsets\"",
        ),
        (
            r#"{"t":{"dtype":8,"shape":[1],"data_offsets":[0,1]}}"#,
            "\"dtype\" must be a string",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
            "negative",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#,
            "1.5",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":"1","data_offsets":[0,1]}}"#,
            "\"shape\" must be a list",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
            "[begin, end]",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#,
            "[begin, end]",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1e30]}}"#,
            "data_offsets",
        ),
        (r#"{"t":[1]}"#, "got an array"),
        (
            r#"{"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
            "unknown dtype \"Q4\"",
        ),
    ];
    for (json, want) in cases {
        let e = err(json, None);
        assert!(e.contains("tensor \"t\""), "{json}: {e}");
        assert!(e.contains(want), "{json}: {e}");
    }
}

#[test]
fn metadata_must_map_strings_to_strings() {
    assert!(parse(r#"{"__metadata__":null}"#, Some(0))
        .unwrap()
        .metadata
        .is_none());
    assert!(err(r#"{"__metadata__":{"a":1}}"#, None).contains("value of \"a\" must be a string"));
    assert!(err(r#"{"__metadata__":[]}"#, None).contains("__metadata__"));
}

#[test]
fn shape_overflow_is_caught() {
    let e = err(
        r#"{"t":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}"#,
        None,
    );
    assert!(e.contains("overflows"), "{e}");
    // numel fits u64 but bytes do not: reported as a size mismatch, not wrapped.
    let e = err(
        r#"{"t":{"dtype":"F64","shape":[4294967296,4294967295],"data_offsets":[0,8]}}"#,
        None,
    );
    assert!(e.contains("needs 147573952555316674560 bytes"), "{e}");
}

#[test]
fn offsets_are_checked() {
    let e = err(
        r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[5,4]}}"#,
        None,
    );
    assert!(e.contains("end before they begin"), "{e}");
    let e = err(
        r#"{"t":{"dtype":"F16","shape":[2],"data_offsets":[0,3]}}"#,
        None,
    );
    assert!(e.contains("needs 4 bytes") && e.contains("span 3"), "{e}");
    let e = err(
        r#"{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        Some(2),
    );
    assert!(e.contains("beyond the 2-byte data section"), "{e}");
    let e = err(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
            "b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        None,
    );
    assert!(
        e.contains("\"b\" (bytes 2..6) overlaps tensor \"a\" (bytes 0..4)"),
        "{e}"
    );
    let e = err(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
            "b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}"#,
        None,
    );
    assert!(e.contains("bytes 4..6") && e.contains("\"b\""), "{e}");
    let e = err(
        r#"{"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        None,
    );
    assert!(e.contains("bytes 0..2"), "{e}");
    let e = err(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
        Some(9),
    );
    assert!(e.contains("trailing bytes"), "{e}");
}

#[test]
fn reads_only_the_header_of_a_sparse_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let json = r#"{"w":{"dtype":"BF16","shape":[32768,32768],"data_offsets":[0,2147483648]}}"#;
    let bytes = framed(json);
    let f = File::create(&path).unwrap();
    std::io::Write::write_all(&mut &f, &bytes).unwrap();
    f.set_len(bytes.len() as u64 + 2_147_483_648).unwrap();
    let h = read_header(&path).unwrap();
    assert_eq!(h.parameter_count, 1 << 30);
    f.set_len(bytes.len() as u64 + 10).unwrap();
    let e = read_header(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(path.to_str().unwrap()) && e.contains("\"w\""),
        "{e}"
    );
    let missing = dir.path().join("nope.safetensors");
    let e = read_header(&missing).unwrap_err();
    assert_eq!(e.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
}

/// The careful path alone: what `parse_json` falls back to.
fn slow_fields(text: &str) -> Option<validate::Fields> {
    let mut de = serde_json::Deserializer::from_str(text);
    let header = raw::HeaderSeed.deserialize(&mut de).ok()?;
    de.end().ok()?;
    validate::from_entries(header).ok()
}

fn finished(fields: Option<validate::Fields>) -> Option<Result<SafetensorsHeader, String>> {
    fields.map(|f| validate::finish(f, 0, None).map_err(|e| e.to_string()))
}

/// The fast typed path must accept exactly what the careful path accepts,
/// with the same result, or errors would depend on which path ran.
fn assert_paths_agree(text: &str) {
    assert_eq!(
        finished(fast::read(text)),
        finished(slow_fields(text)),
        "paths disagree on {text}"
    );
}

#[test]
fn fast_and_careful_paths_agree_on_known_cases() {
    for text in [
        TWO,
        "{}",
        r#"{"__metadata__":null}"#,
        r#"{"__metadata__":{"a":"b"},"__metadata__":{"a":"b"}}"#,
        r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[{"x":1}]}}"#,
        r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"dtype":"U8"}}"#,
        r#"{"t":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}"#,
        r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{}}"#,
        r#"{"t\u0041":{"dtype":"U\u0038","shape":[1],"data_offsets":[0,1]}}"#,
        r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#,
        r#"{"t":null}"#,
    ] {
        assert_paths_agree(text);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 2048, ..Default::default() })]

    #[test]
    fn fast_and_careful_paths_agree_on_json_like_text(
        text in r#"\{("(a|b|__metadata__)":(\{("x":\{"y":1\},)?("dtype":("(U8|F16|F4|Q)"|1),)?("shape":(\[([0-9]|-1|1\.5)(,[0-9])?\]|"s"),)?("dtype":"U8",)?"data_offsets":\[[0-9],[0-9]{1,2}(,1)?\]\}|\{"k":"(v|w)"\}|null)(,)?){1,3}\}"#
    ) {
        assert_paths_agree(&text);
    }
}
