//! Checks before anything reaches ONNX Runtime: a request's inputs against what the model declares, and the parts
//! of an [`EngineConfig`] that depend on the model. A refused request leaves the engine as it was.

use std::collections::HashSet;

use crate::config::{EngineConfig, Precision, ShapeBucket};
use crate::error::{Error, Result};
use crate::model::{Dim, ModelInfo, TensorInfo};
use crate::tensor::{ElementType, TensorRef, element_count, string_elements};

/// Every input the model declares is given exactly once, each matching its declaration.
pub(super) fn inputs(info: &ModelInfo, inputs: &[(&str, TensorRef<'_>)]) -> Result<()> {
    let mut seen = HashSet::with_capacity(inputs.len());
    for (name, tensor) in inputs {
        let Some(declared) = info.input(name) else {
            let expected: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::invalid_input(name, format!("the model has no such input (inputs: {expected:?})")));
        };
        if !seen.insert(*name) {
            return Err(Error::invalid_input(name, "given more than once"));
        }
        check_against(declared, tensor)?;
    }
    if let Some(missing) = info.inputs.iter().find(|i| !seen.contains(i.name.as_str())) {
        return Err(Error::invalid_input(&missing.name, "missing: the model requires it"));
    }
    Ok(())
}

fn check_against(declared: &TensorInfo, tensor: &TensorRef<'_>) -> Result<()> {
    let name = declared.name.as_str();
    let Some(expected_type) = declared.element_type else {
        return Err(Error::invalid_input(
            name,
            "this input's type is not supported by the SDK (not a numeric, bool or string tensor)",
        ));
    };
    let f32_for_f16 = expected_type == ElementType::F16 && tensor.element_type == ElementType::F32;
    if tensor.element_type != expected_type && !f32_for_f16 {
        return Err(Error::invalid_input(
            name,
            format!("expected element type {expected_type}, got {}", tensor.element_type),
        ));
    }
    if tensor.shape.len() != declared.shape.len() {
        return Err(Error::invalid_input(
            name,
            format!(
                "expected rank {} (shape {}), got rank {} (shape {:?})",
                declared.shape.len(),
                shape_text(&declared.shape),
                tensor.shape.len(),
                tensor.shape
            ),
        ));
    }
    let count = element_count(name, tensor.shape)?;
    for (axis, (dim, &got)) in declared.shape.iter().zip(tensor.shape).enumerate() {
        if let Dim::Fixed { size } = dim
            && got != *size
        {
            return Err(Error::invalid_input(
                name,
                format!(
                    "dimension {axis} must be {size} (shape {}), got {got} (shape {:?})",
                    shape_text(&declared.shape),
                    tensor.shape
                ),
            ));
        }
    }
    if tensor.element_type == ElementType::String {
        let mut strings = 0usize;
        for element in string_elements(tensor.data) {
            element.map_err(|reason| Error::invalid_input(name, reason))?;
            strings += 1;
        }
        if strings != count {
            return Err(Error::invalid_input(
                name,
                format!("shape {:?} needs {count} strings, got {strings}", tensor.shape),
            ));
        }
        return Ok(());
    }
    let expected_len = count.checked_mul(tensor.element_type.size()).ok_or_else(|| {
        Error::invalid_input(name, format!("shape {:?} of {} is too large", tensor.shape, tensor.element_type))
    })?;
    if tensor.data.len() != expected_len {
        return Err(Error::invalid_input(
            name,
            format!(
                "shape {:?} of {} needs {expected_len} bytes ({count} elements), got {} bytes",
                tensor.shape,
                tensor.element_type,
                tensor.data.len()
            ),
        ));
    }
    if tensor.element_type == ElementType::Bool && tensor.data.iter().any(|&b| b > 1) {
        return Err(Error::invalid_input(name, "bool elements must be 0 or 1"));
    }
    Ok(())
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed { size } => size.to_string(),
            Dim::Symbolic { name } => name.clone(),
            Dim::Dynamic => "?".into(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The counts of a configuration: none negative, concurrency within its bounds.
pub(super) fn counts(config: &EngineConfig) -> Result<()> {
    let xnnpack = config.accelerators.iter().find_map(|a| match a {
        crate::Accelerator::Xnnpack { threads } => Some(*threads),
        _ => None,
    });
    for (what, value) in [
        ("intra_op_threads", config.intra_op_threads),
        ("inter_op_threads", config.inter_op_threads),
        ("memory_limit_mb", config.memory_limit_mb),
        ("Xnnpack threads", xnnpack.unwrap_or(0)),
    ] {
        if value < 0 {
            return Err(Error::InvalidConfig { reason: format!("{what} must be 0 or more, got {value}") });
        }
    }
    if !(1..=crate::config::MAX_CONCURRENCY).contains(&config.concurrency) {
        return Err(Error::InvalidConfig {
            reason: format!(
                "concurrency must be between 1 and {}, got {}",
                crate::config::MAX_CONCURRENCY,
                config.concurrency
            ),
        });
    }
    Ok(())
}

/// Precision choice belongs to bundles; a single file is what it is.
pub(super) fn single_model(config: &EngineConfig) -> Result<()> {
    if config.precision != Precision::Auto {
        return Err(Error::InvalidConfig {
            reason: format!(
                "precision {:?} selects a variant of a model bundle: load the bundle (from_bundle), or load the \
                 variant file with precision Auto",
                config.precision
            ),
        });
    }
    Ok(())
}

/// Every bucket names only dynamic dims the model has, with sizes ONNX Runtime accepts.
pub(super) fn shape_buckets(info: &ModelInfo, buckets: &[ShapeBucket]) -> Result<()> {
    let symbols: HashSet<&str> = info
        .inputs
        .iter()
        .flat_map(|i| &i.shape)
        .filter_map(|d| if let Dim::Symbolic { name } = d { Some(name.as_str()) } else { None })
        .collect();
    for (i, bucket) in buckets.iter().enumerate() {
        if bucket.dims.is_empty() {
            return Err(Error::InvalidConfig { reason: format!("shape bucket {i} fixes no dimension") });
        }
        for (name, size) in bucket.sorted() {
            if !symbols.contains(name) {
                let mut known: Vec<&str> = symbols.iter().copied().collect();
                known.sort();
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "shape bucket {i}: the model has no dynamic dimension `{name}` (it has: {known:?})"
                    ),
                });
            }
            if size <= 0 {
                return Err(Error::InvalidConfig {
                    reason: format!("shape bucket {i}: `{name}` = {size} is not a valid size"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model declaring `x: f32 [batch, 2]` and `mask: bool [2]`.
    fn info() -> ModelInfo {
        let tensor = |name: &str, element_type, shape| TensorInfo { name: name.into(), element_type, shape };
        ModelInfo {
            inputs: vec![
                tensor(
                    "x",
                    Some(ElementType::F32),
                    vec![Dim::Symbolic { name: "batch".into() }, Dim::Fixed { size: 2 }],
                ),
                tensor("mask", Some(ElementType::Bool), vec![Dim::Fixed { size: 2 }]),
            ],
            outputs: Vec::new(),
            metadata: Default::default(),
        }
    }

    fn refusal(result: Result<()>) -> (String, String) {
        match result {
            Err(Error::InvalidInput { name, reason }) => (name, reason),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn a_request_matching_the_declaration_passes() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mask = [1u8, 0];
        let shape = [2i64, 2];
        let ok = inputs(
            &info(),
            &[("x", TensorRef::new(&shape, &x)), ("mask", TensorRef::from_bytes(ElementType::Bool, &[2], &mask))],
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn each_mismatch_names_the_input_and_what_is_wrong() {
        let info = info();
        let x = [1.0f32, 2.0];
        let mask = [1u8, 0];
        let mask_ref = TensorRef::from_bytes(ElementType::Bool, &[2], &mask);
        let with_x = |t: TensorRef<'_>| refusal(inputs(&info, &[("x", t), ("mask", mask_ref)]));
        assert!(with_x(TensorRef::new(&[1, 3], &[0.0f32; 3])).1.contains("dimension 1 must be 2"));
        assert!(with_x(TensorRef::new(&[2], &x)).1.contains("expected rank 2"));
        assert!(with_x(TensorRef::new(&[1, 2], &[1i64, 2])).1.contains("expected element type"));
        assert!(with_x(TensorRef::from_bytes(ElementType::F32, &[1, 2], &[0u8; 7])).1.contains("needs 8 bytes"));
        assert!(with_x(TensorRef::new(&[-1, 2], &x)).0 == "x");
        // float32 for a float16 input is converted by the engine, so it passes; the reverse does not.
        let f16_model = ModelInfo {
            inputs: vec![TensorInfo { name: "h".into(), element_type: Some(ElementType::F16), shape: vec![] }],
            ..info.clone()
        };
        assert_eq!(inputs(&f16_model, &[("h", TensorRef::new(&[], &[1.0f32]))]), Ok(()));

        let x_ref = TensorRef::new(&[1, 2], &x);
        assert_eq!(refusal(inputs(&info, &[("x", x_ref)])), ("mask".into(), "missing: the model requires it".into()));
        assert_eq!(refusal(inputs(&info, &[("x", x_ref), ("x", x_ref)])), ("x".into(), "given more than once".into()));
        assert!(refusal(inputs(&info, &[("y", x_ref)])).1.contains("no such input"));
        let bad_bool = [2u8, 0];
        let bad_mask = TensorRef::from_bytes(ElementType::Bool, &[2], &bad_bool);
        assert_eq!(refusal(inputs(&info, &[("x", x_ref), ("mask", bad_mask)])).1, "bool elements must be 0 or 1");
    }

    #[test]
    fn a_single_file_takes_only_automatic_precision() {
        assert_eq!(single_model(&EngineConfig::default()), Ok(()));
        let fp16 = EngineConfig { precision: Precision::Fp16, ..EngineConfig::default() };
        assert!(matches!(single_model(&fp16), Err(Error::InvalidConfig { reason }) if reason.contains("from_bundle")));
    }

    #[test]
    fn shape_buckets_must_fix_dynamic_dims_the_model_has() {
        let info = info();
        let reason = |buckets: Vec<ShapeBucket>| match shape_buckets(&info, &buckets) {
            Err(Error::InvalidConfig { reason }) => reason,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(shape_buckets(&info, &[ShapeBucket::new([("batch", 4)])]), Ok(()));
        assert!(reason(vec![ShapeBucket::default()]).contains("fixes no dimension"));
        assert!(reason(vec![ShapeBucket::new([("sequence", 4)])]).contains("no dynamic dimension `sequence`"));
        assert!(reason(vec![ShapeBucket::new([("batch", 0)])]).contains("not a valid size"));
        assert!(reason(vec![ShapeBucket::new([("batch", -1)])]).contains("not a valid size"));
    }
}
