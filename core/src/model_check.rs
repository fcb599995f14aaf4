//! The check every model passes before ONNX Runtime sees its bytes. Apps download models, so a model is untrusted
//! input: this walks its protobuf wire format (never decoding tensor data, so it costs microseconds even for a large
//! model) and refuses what ONNX Runtime would act on unsafely or what no real model does:
//!
//! - external data outside the model's directory: a location must be relative, free of `..`, and resolve (symlinks
//!   included) to a regular file inside the directory, with its offset and length inside that file. A model given
//!   as bytes has no directory, so it may use external data only when the caller names one;
//! - declared sizes that overflow (a tensor or input whose dims multiply past `i64::MAX`, negative dims);
//! - nesting deeper than [`MAX_DEPTH`] messages, malformed wire data, and files over protobuf's 2 GiB limit;
//! - graph input and output names that cannot cross a C API (NUL inside), which would load but never run.
//!
//! The schema fields it follows are ONNX's `onnx.proto3` field numbers, named where they are used.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::protobuf::{Fields, Found, Value, push_ints};

/// Protobuf cannot hold a message over 2 GiB; ONNX Runtime refuses one too (larger models use external data).
pub(crate) const MAX_MODEL_BYTES: u64 = i32::MAX as u64;

/// Messages nested deeper than this are refused (protobuf's own default recursion limit is 100).
pub(crate) const MAX_DEPTH: usize = 64;

/// What a checked model holds that its loader needs to know.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Initializers kept in files beside the model.
    pub external_data: usize,
    /// A MaxPool or AveragePool whose output can be empty (see [`pool_can_be_empty`]): the model must not run
    /// through ONNX Runtime's NCHWc layout.
    pub pool_can_be_empty: bool,
}

/// ONNX Runtime's own model format: a flatbuffer (file identifier `ORTM`) that ONNX Runtime verifies itself before
/// reading it (flatbuffers' verifier, made for untrusted buffers), with no external data. ONNX Runtime takes a file
/// for one by its `.ort` extension, and bytes by the identifier.
pub(crate) fn is_ort_format(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"ORTM".as_slice())
}

/// Checks a model's bytes. `dir` is where its external data may live: the model file's directory, or the directory a
/// caller named for a model given as bytes (`None`: the model may not use external data).
pub(crate) fn check(bytes: &[u8], dir: Option<&Path>) -> Result<Checked> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(Error::invalid_model(format!(
            "{} bytes is over protobuf's 2 GiB limit for one model (larger models keep weights in external data)",
            bytes.len()
        )));
    }
    let mut walk = Walk { dir: dir.map(|d| (d, std::fs::canonicalize(d).ok())), checked: Checked::default() };
    walk.model(bytes).map_err(|reason| Error::invalid_model(format!("refused before loading: {reason}")))?;
    Ok(walk.checked)
}

struct Walk<'a> {
    /// The external-data directory as given and canonicalized (`None` inside: it does not exist).
    dir: Option<(&'a Path, Option<PathBuf>)>,
    checked: Checked,
}

impl Walk<'_> {
    /// ModelProto: 7 graph, 20 training_info, 25 functions. A file with no graph is not a model.
    fn model(&mut self, bytes: &[u8]) -> Found {
        let mut has_graph = false;
        for field in Fields::new(bytes) {
            let (number, value) = field?;
            match (number, value) {
                (7, Value::Bytes(b)) => {
                    has_graph = true;
                    self.graph(b, 1, true)?;
                }
                (20, Value::Bytes(b)) => self.training_info(b, 1)?,
                (25, Value::Bytes(b)) => self.function(b, 1)?,
                (7 | 20 | 25, _) => return Err(format!("field {number} has the wrong wire type")),
                _ => {}
            }
        }
        if !has_graph {
            return Err("not an ONNX model (no graph)".into());
        }
        Ok(())
    }

    /// GraphProto: 1 node, 5 initializer, 11 input, 12 output, 15 sparse_initializer.
    fn graph(&mut self, bytes: &[u8], depth: usize, main: bool) -> Found {
        let depth = deeper(depth)?;
        for field in Fields::new(bytes) {
            match field? {
                (1, Value::Bytes(b)) => self.node(b, depth)?,
                (5, Value::Bytes(b)) => self.tensor(b, depth)?,
                (15, Value::Bytes(b)) => self.sparse_tensor(b, depth)?,
                (11 | 12, Value::Bytes(b)) => value_info(b, depth, main)?,
                (n @ (1 | 5 | 11 | 12 | 15), _) => return Err(format!("graph field {n} has the wrong wire type")),
                _ => {}
            }
        }
        Ok(())
    }

    /// NodeProto: 4 op_type, 5 attribute, 7 domain.
    fn node(&mut self, bytes: &[u8], depth: usize) -> Found {
        let depth = deeper(depth)?;
        let (mut op_type, mut domain) = (&[][..], &[][..]);
        for field in Fields::new(bytes) {
            match field? {
                (4, Value::Bytes(b)) => op_type = b,
                (7, Value::Bytes(b)) => domain = b,
                (5, Value::Bytes(b)) => self.attribute(b, depth)?,
                _ => {}
            }
        }
        let onnx_domain = domain.is_empty() || domain == b"ai.onnx";
        if onnx_domain && matches!(op_type, b"MaxPool" | b"AveragePool") && pool_can_be_empty(bytes)? {
            self.checked.pool_can_be_empty = true;
        }
        Ok(())
    }

    /// AttributeProto: 5 t, 6 g, 10 tensors, 11 graphs, 22 sparse_tensor, 23 sparse_tensors.
    fn attribute(&mut self, bytes: &[u8], depth: usize) -> Found {
        let depth = deeper(depth)?;
        for field in Fields::new(bytes) {
            match field? {
                (5 | 10, Value::Bytes(b)) => self.tensor(b, depth)?,
                (6 | 11, Value::Bytes(b)) => self.graph(b, depth, false)?,
                (22 | 23, Value::Bytes(b)) => self.sparse_tensor(b, depth)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// FunctionProto: 7 node, 11 attribute_proto.
    fn function(&mut self, bytes: &[u8], depth: usize) -> Found {
        let depth = deeper(depth)?;
        for field in Fields::new(bytes) {
            match field? {
                (7, Value::Bytes(b)) => self.node(b, depth)?,
                (11, Value::Bytes(b)) => self.attribute(b, depth)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// TrainingInfoProto: 1 initialization, 2 algorithm.
    fn training_info(&mut self, bytes: &[u8], depth: usize) -> Found {
        let depth = deeper(depth)?;
        for field in Fields::new(bytes) {
            if let (1 | 2, Value::Bytes(b)) = field? {
                self.graph(b, depth, false)?;
            }
        }
        Ok(())
    }

    /// SparseTensorProto: 1 values, 2 indices, 3 dims.
    fn sparse_tensor(&mut self, bytes: &[u8], depth: usize) -> Found {
        let depth = deeper(depth)?;
        let mut dims = Vec::new();
        for field in Fields::new(bytes) {
            match field? {
                (1 | 2, Value::Bytes(b)) => self.tensor(b, depth)?,
                (3, value) => push_ints(&mut dims, value)?,
                _ => {}
            }
        }
        element_count(&dims).map(drop)
    }

    /// TensorProto: 1 dims, 8 name, 13 external_data, 14 data_location (1 = EXTERNAL).
    fn tensor(&mut self, bytes: &[u8], depth: usize) -> Found {
        deeper(depth)?;
        let mut dims = Vec::new();
        let (mut location, mut offset, mut length) = (None, None, None);
        let mut external = false;
        for field in Fields::new(bytes) {
            match field? {
                (1, value) => push_ints(&mut dims, value)?,
                (13, Value::Bytes(entry)) => {
                    external = true;
                    let (key, value) = string_entry(entry)?;
                    match key {
                        "location" => location = Some(value),
                        "offset" => offset = Some(number(key, value)?),
                        "length" => length = Some(number(key, value)?),
                        _ => {}
                    }
                }
                (14, Value::Varint(kind)) => external |= kind == 1,
                _ => {}
            }
        }
        element_count(&dims)?;
        if external {
            let location = location.ok_or("external data without a location")?;
            self.external_file(location, offset.unwrap_or(0), length)?;
            self.checked.external_data += 1;
        }
        Ok(())
    }

    /// An external data location: a relative path inside the directory, to a regular file that holds the range.
    fn external_file(&self, location: &str, offset: u64, length: Option<u64>) -> Found {
        let Some((dir, canonical_dir)) = &self.dir else {
            return Err(format!(
                "the model keeps weights in external data (`{location}`) but was given as bytes with no directory \
                 for them; load it from its file, or name the directory (external_data_dir)"
            ));
        };
        let relative = Path::new(location);
        let plain = !location.is_empty()
            && !location.contains('\0')
            && !location.contains('\\')
            && relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !plain {
            return Err(format!(
                "external data location `{}` must be a relative path inside the model's directory (no `..`, no \
                 absolute path)",
                location.escape_debug()
            ));
        }
        let path = dir.join(relative);
        let resolved = std::fs::canonicalize(&path).map_err(|e| format!("external data `{location}`: {e}"))?;
        if canonical_dir.as_ref().is_none_or(|d| !resolved.starts_with(d)) {
            return Err(format!("external data `{location}` resolves outside the model's directory"));
        }
        let meta = std::fs::metadata(&resolved).map_err(|e| format!("external data `{location}`: {e}"))?;
        if !meta.is_file() {
            return Err(format!("external data `{location}` is not a regular file"));
        }
        let end = offset.checked_add(length.unwrap_or(0)).ok_or("external data offset + length overflows")?;
        if end > meta.len() {
            return Err(format!(
                "external data `{location}`: bytes {offset}..{end} lie outside the {}-byte file",
                meta.len()
            ));
        }
        Ok(())
    }
}

/// Whether a pooling node's window can be larger than its padded input for some input size, making its output
/// empty: ONNX Runtime's NCHWc pooling kernels (x86-64, optimize level 3) divide by zero on an empty output and kill
/// the process with SIGFPE (seen with ONNX Runtime 1.31.1; its ARM64 build is not affected). With floor or ceil
/// rounding, the output along an axis is empty for some input `in >= 1` exactly when
/// `(kernel - 1) * dilation + 1 - pads - stride >= 1`. Same-size padding (`auto_pad` SAME_*) never empties it.
fn pool_can_be_empty(node: &[u8]) -> Found<bool> {
    let (mut kernel, mut strides, mut pads, mut dilations) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut same_padding = false;
    for field in Fields::new(node) {
        let (5, Value::Bytes(attribute)) = field? else { continue };
        // AttributeProto: 1 name, 4 s, 8 ints.
        let (mut name, mut text, mut ints) = (&[][..], &[][..], Vec::new());
        for inner in Fields::new(attribute) {
            match inner? {
                (1, Value::Bytes(b)) => name = b,
                (4, Value::Bytes(b)) => text = b,
                (8, value) => push_ints(&mut ints, value)?,
                _ => {}
            }
        }
        match name {
            b"kernel_shape" => kernel = ints,
            b"strides" => strides = ints,
            b"pads" => pads = ints,
            b"dilations" => dilations = ints,
            b"auto_pad" => same_padding = text.starts_with(b"SAME"),
            _ => {}
        }
    }
    if same_padding {
        return Ok(false);
    }
    let axes = kernel.len();
    Ok((0..axes).any(|i| {
        let at = |v: &[i64], i: usize, default: i64| v.get(i).copied().unwrap_or(default);
        let window = (at(&kernel, i, 1) - 1).saturating_mul(at(&dilations, i, 1)).saturating_add(1);
        let padding = at(&pads, i, 0).saturating_add(at(&pads, i + axes, 0));
        window.saturating_sub(padding).saturating_sub(at(&strides, i, 1)) >= 1
    }))
}

/// ValueInfoProto (graph inputs and outputs): 1 name, 2 type. Main-graph names must cross a C API; declared
/// shapes must not overflow.
fn value_info(bytes: &[u8], depth: usize, main: bool) -> Found {
    let depth = deeper(depth)?;
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(name)) if main && name.contains(&0) => {
                return Err(format!(
                    "graph input or output name `{}` contains NUL",
                    String::from_utf8_lossy(name).escape_debug()
                ));
            }
            (2, Value::Bytes(ty)) => type_proto(ty, depth)?,
            _ => {}
        }
    }
    Ok(())
}

/// TypeProto: 1 tensor_type, 4 sequence_type, 5 map_type, 6 optional_type, 8 sparse_tensor_type.
fn type_proto(bytes: &[u8], depth: usize) -> Found {
    let depth = deeper(depth)?;
    for field in Fields::new(bytes) {
        match field? {
            // Tensor and SparseTensor: 2 shape. Sequence/Optional: 1 elem_type. Map: 2 value_type.
            (1 | 8, Value::Bytes(b)) => {
                let depth = deeper(depth)?;
                for inner in Fields::new(b) {
                    if let (2, Value::Bytes(shape)) = inner? {
                        shape_proto(shape, depth)?;
                    }
                }
            }
            (4 | 6, Value::Bytes(b)) => {
                for inner in Fields::new(b) {
                    if let (1, Value::Bytes(elem)) = inner? {
                        type_proto(elem, depth)?;
                    }
                }
            }
            (5, Value::Bytes(b)) => {
                for inner in Fields::new(b) {
                    if let (2, Value::Bytes(value)) = inner? {
                        type_proto(value, depth)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// TensorShapeProto: 1 dim (Dimension: 1 dim_value). Fixed dims must multiply within i64. A negative dim_value
/// declares an unknown size, as ONNX Runtime reads it (paddle2onnx writes -1 for a dynamic batch: PP-OCR's models);
/// a tensor's own dims (`tensor`) must be non-negative.
fn shape_proto(bytes: &[u8], depth: usize) -> Found {
    let depth = deeper(depth)?;
    let mut dims = Vec::new();
    for field in Fields::new(bytes) {
        if let (1, Value::Bytes(dim)) = field? {
            deeper(depth)?;
            for inner in Fields::new(dim) {
                if let (1, Value::Varint(v)) = inner?
                    && (v as i64) >= 0
                {
                    dims.push(v as i64);
                }
            }
        }
    }
    element_count(&dims).map(drop)
}

/// StringStringEntryProto: 1 key, 2 value, both UTF-8.
fn string_entry(bytes: &[u8]) -> Found<(&str, &str)> {
    let (mut key, mut value) = ("", "");
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(b)) => key = std::str::from_utf8(b).map_err(|_| "external data key is not UTF-8")?,
            (2, Value::Bytes(b)) => value = std::str::from_utf8(b).map_err(|_| "external data value is not UTF-8")?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn number(key: &str, value: &str) -> Found<u64> {
    value.parse().map_err(|_| format!("external data {key} `{}` is not a non-negative integer", value.escape_debug()))
}

/// The element count of declared dims: each non-negative, the product within i64 (a zero dim makes it 0).
fn element_count(dims: &[i64]) -> Found<u64> {
    if let Some(d) = dims.iter().find(|&&d| d < 0) {
        return Err(format!("negative dimension {d}"));
    }
    if dims.contains(&0) {
        return Ok(0);
    }
    dims.iter()
        .try_fold(1i64, |acc, &d| acc.checked_mul(d))
        .map(|n| n as u64)
        .ok_or_else(|| format!("declared shape {dims:?} has more elements than fit in 64 bits"))
}

fn deeper(depth: usize) -> Found<usize> {
    if depth >= MAX_DEPTH {
        return Err(format!("messages nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(depth + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::{encode_varint, key};

    fn bytes_field(number: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = key(number, 2);
        out.extend(encode_varint(payload.len() as u64));
        out.extend(payload);
        out
    }

    fn int_field(number: u32, v: u64) -> Vec<u8> {
        let mut out = key(number, 0);
        out.extend(encode_varint(v));
        out
    }

    fn external_tensor(location: &str) -> Vec<u8> {
        let entry =
            |k: &str, v: &str| bytes_field(13, &[bytes_field(1, k.as_bytes()), bytes_field(2, v.as_bytes())].concat());
        [int_field(1, 4), bytes_field(8, b"w"), entry("location", location), entry("length", "4"), int_field(14, 1)]
            .concat()
    }

    fn model_with(graph: &[u8]) -> Vec<u8> {
        [int_field(1, 8), bytes_field(7, graph)].concat()
    }

    #[test]
    fn refuses_what_is_not_a_model() {
        for junk in [&b"\0\0\0\0"[..], b"hello world", &[0x0a, 0xff, 0xff, 0xff, 0x0f], &key(3, 3), &int_field(1, 8)] {
            assert!(matches!(check(junk, None), Err(Error::InvalidModel { .. })), "{junk:?}");
        }
        assert!(check(&model_with(&[]), None).is_ok());
    }

    #[test]
    fn external_data_needs_a_directory_and_stays_inside_it() {
        let graph = bytes_field(5, &external_tensor("weights.bin"));
        let err = check(&model_with(&graph), None).unwrap_err().to_string();
        assert!(err.contains("external data") && err.contains("no directory"), "{err}");
        let dir = std::env::temp_dir().join(format!("openautoglm-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("weights.bin"), [0u8; 4]).unwrap();
        assert_eq!(check(&model_with(&graph), Some(&dir)).unwrap().external_data, 1);
        for escape in ["../weights.bin", "/etc/passwd", "a/../../etc/passwd", "", "C:\\x", "w\0x"] {
            let graph = bytes_field(5, &external_tensor(escape));
            assert!(check(&model_with(&graph), Some(&dir)).is_err(), "{escape:?} must be refused");
        }
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(dir.join("link"));
            std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
            let graph = bytes_field(5, &external_tensor("link"));
            let err = check(&model_with(&graph), Some(&dir)).unwrap_err().to_string();
            assert!(err.contains("outside"), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn external_data_inside_subgraphs_and_functions_is_found() {
        let tensor_attr = bytes_field(5, &bytes_field(5, &external_tensor("/etc/passwd")));
        let node = bytes_field(1, &tensor_attr);
        assert!(check(&model_with(&node), None).is_err(), "node attribute tensor");
        let subgraph = bytes_field(1, &bytes_field(5, &bytes_field(6, &bytes_field(5, &external_tensor("x")))));
        assert!(check(&model_with(&subgraph), None).is_err(), "If/Loop body initializer");
        let function = bytes_field(25, &bytes_field(7, &tensor_attr));
        assert!(check(&[model_with(&[]), function].concat(), None).is_err(), "function");
    }

    #[test]
    fn sizes_and_nesting_are_bounded() {
        let huge = [int_field(1, 1 << 32), int_field(1, 1 << 32), bytes_field(8, b"w")].concat();
        assert!(check(&model_with(&bytes_field(5, &huge)), None).is_err());
        let zero = [int_field(1, 1 << 40), int_field(1, 1 << 40), int_field(1, 0)].concat();
        assert!(check(&model_with(&bytes_field(5, &zero)), None).is_ok(), "zero elements whatever the other dims");
        let mut graph = Vec::new();
        for _ in 0..100 {
            graph = bytes_field(1, &bytes_field(5, &bytes_field(6, &graph)));
        }
        let err = check(&model_with(&graph), None).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn negative_declared_dims_are_unknown_sizes_but_negative_tensor_dims_are_refused() {
        // graph.input (11): ValueInfoProto { 1 name, 2 type { 1 tensor_type { 2 shape { 1 dim { 1 dim_value } } } } }
        let dim = |v: i64| bytes_field(1, &int_field(1, v as u64));
        let shape = bytes_field(2, &[dim(-1), dim(3), dim(48), dim(192)].concat());
        let input = [bytes_field(1, b"x"), bytes_field(2, &bytes_field(1, &shape))].concat();
        assert!(check(&model_with(&bytes_field(11, &input)), None).is_ok());
        let tensor = [int_field(1, -1i64 as u64), int_field(1, 4), bytes_field(8, b"w")].concat();
        let err = check(&model_with(&bytes_field(5, &tensor)), None).unwrap_err().to_string();
        assert!(err.contains("negative dimension"), "{err}");
    }

    fn pool(op: &str, kernel: i64, stride: i64, pad: i64, auto_pad: Option<&str>) -> Vec<u8> {
        let ints = |name: &str, v: i64| {
            let values: Vec<u8> = [v, v].iter().flat_map(|&x| int_field(8, x as u64)).collect();
            bytes_field(5, &[bytes_field(1, name.as_bytes()), values].concat())
        };
        let mut node = [bytes_field(4, op.as_bytes()), ints("kernel_shape", kernel), ints("strides", stride)].concat();
        let pads: Vec<u8> = [pad; 4].iter().flat_map(|&x| int_field(8, x as u64)).collect();
        node.extend(bytes_field(5, &[bytes_field(1, b"pads"), pads].concat()));
        if let Some(mode) = auto_pad {
            node.extend(bytes_field(5, &[bytes_field(1, b"auto_pad"), bytes_field(4, mode.as_bytes())].concat()));
        }
        model_with(&bytes_field(1, &node))
    }

    #[test]
    fn pools_whose_window_can_exceed_the_input_are_flagged() {
        let flagged = |m: Vec<u8>| check(&m, None).unwrap().pool_can_be_empty;
        // Crashed ONNX Runtime 1.31.1 on x86-64 at O3 with a 1x1 input (MaxPool and AveragePool).
        assert!(flagged(pool("MaxPool", 3, 2, 0, None)));
        assert!(flagged(pool("AveragePool", 3, 2, 0, None)));
        assert!(flagged(pool("MaxPool", 6, 1, 2, None)));
        // Never empty: YOLO's SPPF (5, pads 2), ResNet's stem (3, stride 2, pads 1), VGG's 2x2, same padding.
        assert!(!flagged(pool("MaxPool", 5, 1, 2, None)));
        assert!(!flagged(pool("MaxPool", 3, 2, 1, None)));
        assert!(!flagged(pool("MaxPool", 2, 2, 0, None)));
        assert!(!flagged(pool("MaxPool", 3, 2, 0, Some("SAME_UPPER"))));
        assert!(!flagged(pool("LpPool", 3, 2, 0, None)), "not an NCHWc kernel");
    }

    #[test]
    fn input_names_with_nul_are_refused() {
        let input = bytes_field(11, &bytes_field(1, b"a\0b"));
        let err = check(&model_with(&input), None).unwrap_err().to_string();
        assert!(err.contains("NUL"), "{err}");
    }
}
