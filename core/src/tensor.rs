//! Tensors as they cross the engine boundary: an element type, a shape, and the elements as little-endian bytes
//! in one contiguous buffer, so a whole tensor moves in one copy (or none) instead of element by element.
//!
//! String tensors use the same one-buffer form: each element, in row-major order, is its UTF-8 byte length as a
//! little-endian u32 followed by those bytes ([`encode_strings`], [`decode_strings`]). Kotlin and Swift build and
//! read that form for the app, so every language passes strings through the one input path.

use half::{bf16, f16};

use crate::error::{Error, Result};

/// Element types a tensor can hold. Byte layout is the platform's (little-endian on every supported target);
/// `Bool` is one byte per element, 0 or 1; `Bf16` is bfloat16 as its raw 16 bits (no language here has the type);
/// `String` is length-prefixed UTF-8 (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    F32,
    F16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    Bf16,
    String,
}

impl ElementType {
    /// Bytes per element. A string element has no fixed size: 4 is its smallest, the length prefix of "", so that
    /// `count * size()` zero bytes are `count` empty strings.
    pub const fn size(self) -> usize {
        match self {
            ElementType::I8 | ElementType::U8 | ElementType::Bool => 1,
            ElementType::F16 | ElementType::Bf16 | ElementType::I16 | ElementType::U16 => 2,
            ElementType::String => 4,
            ElementType::F32 | ElementType::I32 | ElementType::U32 => 4,
            ElementType::F64 | ElementType::I64 | ElementType::U64 => 8,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::F64 => "f64",
            ElementType::I8 => "i8",
            ElementType::U8 => "u8",
            ElementType::I16 => "i16",
            ElementType::U16 => "u16",
            ElementType::I32 => "i32",
            ElementType::U32 => "u32",
            ElementType::I64 => "i64",
            ElementType::U64 => "u64",
            ElementType::Bool => "bool",
            ElementType::Bf16 => "bf16",
            ElementType::String => "string",
        }
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rust element types that map to an [`ElementType`] and can be viewed as bytes.
pub trait Element: bytemuck::Pod {
    const TYPE: ElementType;
}

macro_rules! elements {
    ($($t:ty => $e:ident),* $(,)?) => { $(impl Element for $t { const TYPE: ElementType = ElementType::$e; })* };
}
elements!(f32 => F32, f16 => F16, bf16 => Bf16, f64 => F64, i8 => I8, u8 => U8, i16 => I16, u16 => U16,
          i32 => I32, u32 => U32, i64 => I64, u64 => U64);

/// Strings in the tensor byte form: per element its UTF-8 length as a little-endian u32, then the bytes.
pub fn encode_strings<S: AsRef<str>>(strings: &[S]) -> Vec<u8> {
    let mut data = Vec::with_capacity(strings.iter().map(|s| 4 + s.as_ref().len()).sum());
    for s in strings {
        let bytes = s.as_ref().as_bytes();
        // A string of 4 GiB or more cannot be a tensor element on a phone; its length saturates and decoding fails.
        data.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        data.extend_from_slice(bytes);
    }
    data
}

/// The strings of a string tensor's bytes, each as a slice of `data`; why not, when the bytes are not that form
/// (a truncated element, trailing bytes, invalid UTF-8, or a NUL, which ONNX Runtime's C strings cannot hold).
pub fn decode_strings(data: &[u8]) -> std::result::Result<Vec<&str>, String> {
    string_elements(data).collect()
}

/// The strings of a string tensor's bytes one at a time, as [`decode_strings`] reads them, without a vector: a
/// declared count of millions is checked before anything is allocated for it.
pub(crate) fn string_elements(data: &[u8]) -> impl Iterator<Item = std::result::Result<&str, String>> {
    let mut rest = data;
    let mut index = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let element = next_string(&mut rest, index);
        index += 1;
        if element.is_err() {
            rest = &[];
        }
        Some(element)
    })
}

fn next_string<'a>(rest: &mut &'a [u8], index: usize) -> std::result::Result<&'a str, String> {
    let (len, tail) = rest.split_first_chunk::<4>().ok_or("a string element is cut short in its length")?;
    let len = u32::from_le_bytes(*len) as usize;
    if tail.len() < len {
        return Err(format!("string element {index} says {len} bytes but {} remain", tail.len()));
    }
    let (bytes, tail) = tail.split_at(len);
    let s = std::str::from_utf8(bytes).map_err(|_| format!("string element {index} is not UTF-8"))?;
    if s.contains('\0') {
        return Err(format!("string element {index} contains a NUL character"));
    }
    *rest = tail;
    Ok(s)
}

/// Number of elements of `shape`, or an error naming `name` if a dim is negative or the shape is too large. The
/// product of the non-zero dims must fit in i64 even when a zero dim makes the count 0: ONNX Runtime and ort multiply
/// dims in order, so `[2^32, 2^32, 0]` would overflow there while `[0, 2^32, 2^32]` would not; one rule gives every
/// order the same answer.
pub(crate) fn element_count(name: &str, shape: &[i64]) -> Result<usize> {
    let too_large = || Error::invalid_input(name, format!("shape {shape:?} is too large"));
    let mut product: i64 = 1;
    for &d in shape {
        if d < 0 {
            return Err(Error::invalid_input(name, format!("negative dimension {d} in shape {shape:?}")));
        }
        if d > 0 {
            product = product.checked_mul(d).ok_or_else(too_large)?;
        }
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    usize::try_from(product).map_err(|_| too_large())
}

/// A borrowed input tensor: the caller keeps the bytes; the engine reads them in place when they are aligned.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub element_type: ElementType,
    pub shape: &'a [i64],
    pub data: &'a [u8],
}

impl<'a> TensorRef<'a> {
    /// A tensor over raw bytes of `element_type`; checked against the shape when the engine runs.
    pub fn from_bytes(element_type: ElementType, shape: &'a [i64], data: &'a [u8]) -> Self {
        TensorRef { element_type, shape, data }
    }

    /// A tensor over a typed slice, without copying.
    pub fn new<T: Element>(shape: &'a [i64], data: &'a [T]) -> Self {
        TensorRef { element_type: T::TYPE, shape, data: bytemuck::cast_slice(data) }
    }

    /// A boolean tensor (ONNX stores one byte per element).
    pub fn from_bools(shape: &'a [i64], data: &'a [bool]) -> Self {
        // SAFETY: bool is one byte holding 0 or 1, a valid u8 bit pattern.
        let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), data.len()) };
        TensorRef { element_type: ElementType::Bool, shape, data: bytes }
    }
}

/// An output tensor owned by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub element_type: ElementType,
    pub shape: Vec<i64>,
    /// Elements as bytes, little-endian, row-major.
    pub data: Vec<u8>,
}

impl Tensor {
    /// The elements as `T`; a typed error if `T` is not this tensor's element type.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::TYPE != self.element_type {
            return Err(Error::InvalidInput {
                name: self.name.clone(),
                reason: format!("tensor holds {}, not {}", self.element_type, T::TYPE),
            });
        }
        // The byte buffer carries no alignment guarantee for T, so collect (one bulk copy).
        Ok(bytemuck::pod_collect_to_vec(&self.data))
    }

    /// The elements of a `String` tensor.
    pub fn to_strings(&self) -> Result<Vec<String>> {
        if self.element_type != ElementType::String {
            return Err(Error::InvalidInput {
                name: self.name.clone(),
                reason: format!("tensor holds {}, not string", self.element_type),
            });
        }
        decode_strings(&self.data)
            .map(|v| v.into_iter().map(str::to_owned).collect())
            .map_err(|reason| Error::internal(format!("output `{}`: {reason}", self.name)))
    }

    /// The elements of a `Bool` tensor.
    pub fn to_bools(&self) -> Result<Vec<bool>> {
        if self.element_type != ElementType::Bool {
            return Err(Error::InvalidInput {
                name: self.name.clone(),
                reason: format!("tensor holds {}, not bool", self.element_type),
            });
        }
        Ok(self.data.iter().map(|&b| b != 0).collect())
    }

    pub fn element_count(&self) -> usize {
        match self.element_type {
            ElementType::String => decode_strings(&self.data).map_or(0, |s| s.len()),
            other => self.data.len() / other.size(),
        }
    }
}

/// An f32 tensor for unit tests.
#[cfg(test)]
pub(crate) fn f32_tensor(name: &str, shape: &[i64], values: &[f32]) -> Tensor {
    Tensor {
        name: name.into(),
        element_type: ElementType::F32,
        shape: shape.to_vec(),
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_count_checks_dims() {
        assert_eq!(element_count("x", &[]).unwrap(), 1);
        assert_eq!(element_count("x", &[2, 3, 4]).unwrap(), 24);
        assert_eq!(element_count("x", &[2, 0, 4]).unwrap(), 0);
        assert!(matches!(element_count("x", &[2, -1]), Err(Error::InvalidInput { .. })));
        assert!(matches!(element_count("x", &[i64::MAX, i64::MAX]), Err(Error::InvalidInput { .. })));
        assert_eq!(element_count("x", &[1 << 20, 1 << 20, 0]).unwrap(), 0);
        assert_eq!(element_count("x", &[0, 1 << 20, 1 << 20]).unwrap(), 0);
        // Too large in any order, zero dim or not.
        for shape in [[1 << 32, 1 << 32, 0], [0, 1 << 32, 1 << 32], [1 << 32, 0, 1 << 32]] {
            assert!(matches!(element_count("x", &shape), Err(Error::InvalidInput { .. })), "{shape:?}");
        }
        assert!(matches!(element_count("x", &[0, -1]), Err(Error::InvalidInput { .. })));
    }

    #[test]
    fn sizes_match_rust_types() {
        assert_eq!(ElementType::F16.size(), std::mem::size_of::<f16>());
        assert_eq!(ElementType::F32.size(), std::mem::size_of::<f32>());
        assert_eq!(ElementType::I64.size(), std::mem::size_of::<i64>());
        assert_eq!(ElementType::Bool.size(), std::mem::size_of::<bool>());
    }

    #[test]
    fn strings_round_trip_and_malformed_bytes_are_refused() {
        let strings = ["", "héllo", "日本語", "a b"];
        let data = encode_strings(&strings);
        assert_eq!(decode_strings(&data).unwrap(), strings);
        assert_eq!(decode_strings(&[0; 8]).unwrap(), ["", ""], "zeroed bytes are empty strings");
        assert!(decode_strings(&data[..data.len() - 1]).is_err());
        assert!(decode_strings(&[1, 0, 0]).is_err());
        assert!(decode_strings(&[1, 0, 0, 0, 0xff]).unwrap_err().contains("UTF-8"));
        assert!(decode_strings(&encode_strings(&["a\0b"])).unwrap_err().contains("NUL"));
    }

    #[test]
    fn typed_views_are_zero_copy() {
        let data = [1.0f32, 2.0];
        let t = TensorRef::new(&[2], &data);
        assert_eq!(t.data.as_ptr(), data.as_ptr().cast::<u8>());
        assert_eq!(t.data.len(), 8);
    }
}
