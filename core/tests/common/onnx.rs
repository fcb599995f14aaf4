//! A small ONNX writer for hostile and edge-case test models: protobuf wire format by hand, so a test can declare
//! what no exporter would (external data anywhere, 2^31-sized inputs, NUL in names).

/// ONNX TensorProto.DataType values used by the tests.
pub const FLOAT: u64 = 1;
pub const UINT8: u64 = 2;
pub const INT64: u64 = 7;

/// A declared dimension.
pub enum D {
    Fixed(u64),
    Named(&'static str),
}

use openautoglm::wire::put_varint as varint;

pub fn int(number: u32, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(number) << 3, &mut out);
    varint(v, &mut out);
    out
}

pub fn bytes(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(u64::from(number) << 3 | 2, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// ModelProto: ir_version 8, opset 17, the graph.
pub fn model(graph: &[u8]) -> Vec<u8> {
    let opset = [bytes(1, b""), int(2, 17)].concat();
    [int(1, 8), bytes(8, &opset), bytes(7, graph)].concat()
}

/// GraphProto from its parts (each already a field of the graph).
pub fn graph(parts: &[Vec<u8>]) -> Vec<u8> {
    [bytes(2, b"g"), parts.concat()].concat()
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
    node_with_ints(op, inputs, outputs, &[])
}

fn value_info(number: u32, name: &[u8], elem_type: u64, dims: &[D]) -> Vec<u8> {
    let dims: Vec<u8> = dims
        .iter()
        .flat_map(|d| match d {
            D::Fixed(v) => bytes(1, &int(1, *v)),
            D::Named(n) => bytes(1, &bytes(2, n.as_bytes())),
        })
        .collect();
    // No dims: no shape at all (any rank), rather than a scalar.
    let shape = if dims.is_empty() { Vec::new() } else { bytes(2, &dims) };
    let tensor_type = [int(1, elem_type), shape].concat();
    bytes(number, &[bytes(1, name), bytes(2, &bytes(1, &tensor_type))].concat())
}

pub fn input(name: &[u8], elem_type: u64, dims: &[D]) -> Vec<u8> {
    value_info(11, name, elem_type, dims)
}

pub fn output(name: &[u8], elem_type: u64, dims: &[D]) -> Vec<u8> {
    value_info(12, name, elem_type, dims)
}

/// An initializer whose data lives in an external file at `location`.
pub fn external_initializer(name: &str, elem_type: u64, dims: &[u64], location: &str, length: u64) -> Vec<u8> {
    let entry = |k: &str, v: &str| bytes(13, &[bytes(1, k.as_bytes()), bytes(2, v.as_bytes())].concat());
    let mut t: Vec<u8> = dims.iter().flat_map(|d| int(1, *d)).collect();
    t.extend(int(2, elem_type));
    t.extend(bytes(8, name.as_bytes()));
    t.extend(entry("location", location));
    t.extend(entry("offset", "0"));
    t.extend(entry("length", &length.to_string()));
    t.extend(int(14, 1));
    bytes(5, &t)
}

/// y = Identity(x) for a declared input type and shape.
pub fn identity(elem_type: u64, dims: &[D]) -> Vec<u8> {
    model(&graph(&[node("Identity", &["x"], &["y"]), input(b"x", elem_type, dims), output(b"y", elem_type, &[])]))
}

/// y = Identity(w) where w's `length` bytes are read from the external file `location`.
pub fn external_identity(location: &str, length: u64) -> Vec<u8> {
    model(&graph(&[
        node("Identity", &["w"], &["y"]),
        external_initializer("w", UINT8, &[length], location, length),
        output(b"y", UINT8, &[D::Fixed(length)]),
    ]))
}

/// A node with integer-list attributes (AttributeProto: 1 name, 8 ints, 20 type = INTS).
pub fn node_with_ints(op: &str, inputs: &[&str], outputs: &[&str], attributes: &[(&str, &[i64])]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        n.extend(bytes(1, i.as_bytes()));
    }
    for o in outputs {
        n.extend(bytes(2, o.as_bytes()));
    }
    n.extend(bytes(4, op.as_bytes()));
    for (name, values) in attributes {
        let mut a = bytes(1, name.as_bytes());
        for v in *values {
            a.extend(int(8, *v as u64));
        }
        a.extend(int(20, 7));
        n.extend(bytes(5, &a));
    }
    bytes(1, &n)
}
