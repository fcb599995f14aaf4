//! Every element type goes in and comes back unchanged through an Identity model.

mod common;

use half::{bf16, f16};
use openautoglm::{Element, ElementType, Error, TensorRef};

fn round_trip<T: Element + PartialEq + std::fmt::Debug>(tag: &str, values: [T; 6]) {
    common::init();
    // Element types exactly as the model declares them (f16 outputs not widened to f32).
    let config = openautoglm::EngineConfig::default().with_f16_outputs_as_f32(false);
    let engine = openautoglm::Engine::from_file(common::model(&format!("identity_{tag}")), config).unwrap();
    assert_eq!(engine.info().inputs[0].element_type, Some(T::TYPE));
    let out = engine.run(&[("x", TensorRef::new(&[2, 3], &values))]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "y");
    assert_eq!(out[0].element_type, T::TYPE);
    assert_eq!(out[0].shape, vec![2, 3]);
    assert_eq!(out[0].to_vec::<T>().unwrap(), values);
}

#[test]
fn f32_round_trips() {
    round_trip("f32", [1.5f32, -2.0, 0.0, f32::MAX, f32::MIN_POSITIVE, -0.25]);
}

#[test]
fn f16_round_trips() {
    round_trip("f16", [1.0, -2.0, 0.5, 65504.0, 0.0, -0.25].map(f16::from_f32));
}

#[test]
fn f64_round_trips() {
    round_trip("f64", [1e300, -1e-300, 0.0, 3.25, -7.0, 42.0]);
}

#[test]
fn i8_round_trips() {
    round_trip("i8", [i8::MIN, -1, 0, 1, 64, i8::MAX]);
}

#[test]
fn u8_round_trips() {
    round_trip("u8", [0u8, 1, 127, 128, 200, 255]);
}

#[test]
fn i16_round_trips() {
    round_trip("i16", [i16::MIN, -1, 0, 1, 1000, i16::MAX]);
}

#[test]
fn u16_round_trips() {
    round_trip("u16", [0u16, 1, 255, 256, 40000, u16::MAX]);
}

#[test]
fn i32_round_trips() {
    round_trip("i32", [i32::MIN, -1, 0, 1, 123456, i32::MAX]);
}

#[test]
fn u32_round_trips() {
    round_trip("u32", [0u32, 1, 7, 1 << 31, 99, u32::MAX]);
}

#[test]
fn i64_round_trips() {
    round_trip("i64", [i64::MIN, -1, 0, 1, 1 << 40, i64::MAX]);
}

#[test]
fn u64_round_trips() {
    round_trip("u64", [0u64, 1, 7, 1 << 63, 99, u64::MAX]);
}

#[test]
fn bf16_round_trips_as_raw_bits() {
    round_trip("bf16", [1.0, -2.0, 0.5, 3.0e38, 0.0, -0.25].map(bf16::from_f32));
}

#[test]
fn strings_round_trip() {
    let engine = common::engine("identity_string");
    assert_eq!(engine.info().inputs[0].element_type, Some(ElementType::String));
    let values = ["", "plain", "héllo wörld", "日本語", "emoji 🙂", "tab\tand\nnewline"];
    let data = openautoglm::encode_strings(&values);
    let out = engine.run(&[("x", TensorRef::from_bytes(ElementType::String, &[2, 3], &data))]).unwrap();
    assert_eq!(out[0].element_type, ElementType::String);
    assert_eq!(out[0].shape, vec![2, 3]);
    assert_eq!(out[0].to_strings().unwrap(), values);
    assert_eq!(out[0].element_count(), 6);
}

#[test]
fn malformed_string_inputs_are_typed_errors_and_the_engine_stays_usable() {
    let engine = common::engine("identity_string");
    let run = |data: &[u8]| engine.run(&[("x", TensorRef::from_bytes(ElementType::String, &[2, 3], data))]);
    let five = openautoglm::encode_strings(&["a"; 5]);
    let mut bad_utf8 = openautoglm::encode_strings(&["a"; 5]);
    bad_utf8.extend_from_slice(&[1, 0, 0, 0, 0xff]);
    let cases: [(&[u8], &str); 6] = [
        (&five, "needs 6 strings, got 5"),
        (&five[..five.len() - 1], "remain"),
        (&five[..five.len() - 2][..1], "cut short"),
        (&bad_utf8, "not UTF-8"),
        (&openautoglm::encode_strings(&["a", "b", "c\0", "d", "e", "f"]), "NUL"),
        (&[0xff; 24], "says"),
    ];
    for (data, why) in cases {
        let err = run(data).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput { name, reason } if name == "x" && reason.contains(why)), "{err}");
    }
    // Warmup feeds empty strings; then a real run still works.
    engine.warmup(1).unwrap();
    let out = run(&openautoglm::encode_strings(&["x"; 6])).unwrap();
    assert_eq!(out[0].to_strings().unwrap(), ["x"; 6]);
}

#[test]
fn bool_round_trips() {
    let engine = common::engine("identity_bool");
    let values = [true, false, false, true, true, false];
    let out = engine.run(&[("x", TensorRef::from_bools(&[2, 3], &values))]).unwrap();
    assert_eq!(out[0].element_type, ElementType::Bool);
    assert_eq!(out[0].to_bools().unwrap(), values);
}

#[test]
fn bool_bytes_other_than_0_and_1_are_rejected() {
    let engine = common::engine("identity_bool");
    let bytes = [0u8, 1, 2, 0, 1, 0];
    let err = engine.run(&[("x", TensorRef::from_bytes(ElementType::Bool, &[2, 3], &bytes))]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { ref name, .. } if name == "x"), "{err}");
}

#[test]
fn reading_an_output_as_the_wrong_type_is_an_error() {
    let engine = common::engine("identity_f32");
    let out = engine.run(&[("x", TensorRef::new(&[2, 3], &[0f32; 6]))]).unwrap();
    assert!(out[0].to_vec::<i64>().is_err());
    assert!(out[0].to_bools().is_err());
    assert_eq!(out[0].element_count(), 6);
}

#[test]
fn unaligned_input_bytes_are_copied_not_misread() {
    // One byte of offset makes the f32 view unaligned: the engine must take the copying path.
    let engine = common::engine("identity_f32");
    let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut storage = [0u8; 1 + 24];
    storage[1..].copy_from_slice(bytemuck::cast_slice(&values));
    let out = engine.run(&[("x", TensorRef::from_bytes(ElementType::F32, &[2, 3], &storage[1..]))]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), values);
}
