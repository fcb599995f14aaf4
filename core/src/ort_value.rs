//! Tensors across the boundary with ONNX Runtime: our validated [`TensorRef`] inputs as ONNX Runtime values (in
//! place where the bytes allow), and ONNX Runtime's outputs as owned [`Tensor`]s, within the engine's memory limit.

use std::borrow::Cow;

use half::{bf16, f16};
use ort::session::SessionInputValue;
use ort::value::{DynValue, ValueType};

use crate::alloc::Limit;
use crate::error::{Error, OrtResultExt, Result};
use crate::model::element_type_of;
use crate::tensor::{ElementType, Tensor, TensorRef};

/// Calls `$body` with `$T` bound to the Rust type of a (Pod) element type; `Bool` is handled by the caller, and
/// `String`, which has no fixed-size Rust type, before this is reached.
macro_rules! with_pod_type {
    ($et:expr, $T:ident => $body:expr, bool => $bool_body:expr) => {
        match $et {
            ElementType::F32 => {
                type $T = f32;
                $body
            }
            ElementType::F16 => {
                type $T = f16;
                $body
            }
            ElementType::Bf16 => {
                type $T = bf16;
                $body
            }
            ElementType::F64 => {
                type $T = f64;
                $body
            }
            ElementType::I8 => {
                type $T = i8;
                $body
            }
            ElementType::U8 => {
                type $T = u8;
                $body
            }
            ElementType::I16 => {
                type $T = i16;
                $body
            }
            ElementType::U16 => {
                type $T = u16;
                $body
            }
            ElementType::I32 => {
                type $T = i32;
                $body
            }
            ElementType::U32 => {
                type $T = u32;
                $body
            }
            ElementType::I64 => {
                type $T = i64;
                $body
            }
            ElementType::U64 => {
                type $T = u64;
                $body
            }
            ElementType::Bool => $bool_body,
            ElementType::String => return Err(Error::internal("string tensors take their own path")),
        }
    };
}

/// Wraps validated input bytes for ONNX Runtime: in place when the bytes are aligned for the element type (the
/// usual case: direct buffers, Vec<f32>, Swift arrays), otherwise one bulk copy. Float32 given for a float16 input
/// is converted in one pass (half's slice conversion, F16C/NEON where the CPU has it).
pub(crate) fn to_ort_value<'a>(
    name: &str,
    t: &TensorRef<'a>,
    wants_f16: bool,
    limit: Limit,
) -> Result<SessionInputValue<'a>> {
    let shape = t.shape.to_vec();
    if t.element_type == ElementType::String {
        return string_tensor(name, shape, t.data, limit).map(|v| v.into_dyn().into());
    }
    if wants_f16 && t.element_type == ElementType::F32 {
        use half::slice::HalfFloatSliceExt;
        let floats: Cow<'_, [f32]> = match bytemuck::try_cast_slice::<u8, f32>(t.data) {
            Ok(view) => Cow::Borrowed(view),
            Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(t.data)),
        };
        let mut halves = limit.vec(floats.len(), || format!("float16 conversion of input `{name}`"))?;
        halves.resize(floats.len(), f16::ZERO);
        halves.convert_from_f32_slice(&floats);
        return ort::value::Tensor::from_array((shape, halves)).map(|v| v.into_dyn().into()).or_invalid_input(name);
    }
    with_pod_type!(t.element_type, T => {
        match bytemuck::try_cast_slice::<u8, T>(t.data) {
            Ok(view) => ort::value::TensorRef::from_array_view((shape, view)).map(|v| v.into_dyn().into()).or_invalid_input(name),
            Err(_) => ort::value::Tensor::from_array((shape, bytemuck::pod_collect_to_vec::<u8, T>(t.data))).map(|v| v.into_dyn().into()).or_invalid_input(name),
        }
    }, bool => {
        // SAFETY: validation checked every byte is 0 or 1, the valid bit patterns of bool.
        let view: &'a [bool] = unsafe { std::slice::from_raw_parts(t.data.as_ptr().cast::<bool>(), t.data.len()) };
        ort::value::TensorRef::from_array_view((shape, view)).map(|v| v.into_dyn().into()).or_invalid_input(name)
    })
}

/// A string input as ONNX Runtime's tensor. ONNX Runtime keeps each element as a `std::string` and takes them as C
/// strings, so a tensor of millions of short strings costs far more than its bytes: every buffer here is sized
/// against the limit and allocated fallibly, and ONNX Runtime's own allocation failure comes back as a status, so
/// a declared `[33554434, 3]` string input is [`Error::MemoryLimit`], not an abort.
fn string_tensor(name: &str, shape: Vec<i64>, data: &[u8], limit: Limit) -> Result<ort::value::DynTensor> {
    use ort::AsPointer;
    use std::ffi::c_char;
    let count = crate::tensor::element_count(name, &shape)?;
    // What ONNX Runtime holds per element beside the text: a std::string (32 bytes in libc++ and libstdc++).
    const ORT_STRING_BYTES: usize = 32;
    let what = || format!("string input `{name}` of {count} elements");
    limit.bytes_for(count, ORT_STRING_BYTES + size_of::<*const c_char>(), what)?;
    // Each element's 4-byte length becomes one NUL: the C strings fit in the encoded size.
    let mut text: Vec<u8> = limit.vec(data.len(), what)?;
    for element in crate::tensor::string_elements(data) {
        text.extend_from_slice(element.map_err(|reason| Error::invalid_input(name, reason))?.as_bytes());
        text.push(0);
    }
    let mut pointers: Vec<*const c_char> = limit.vec(count, what)?;
    let mut start = 0;
    for (at, _) in text.iter().enumerate().filter(|(_, b)| **b == 0) {
        pointers.push(text[start..].as_ptr().cast());
        start = at + 1;
    }
    if pointers.len() != count {
        return Err(Error::invalid_input(
            name,
            format!("shape {shape:?} needs {count} strings, got {}", pointers.len()),
        ));
    }
    let unavailable =
        |detail: &str| Error::MemoryLimit { reason: format!("{}: ONNX Runtime could not hold it ({detail})", what()) };
    let mut tensor =
        ort::value::DynTensor::new(&ort::memory::Allocator::default(), ort::value::TensorElementType::String, shape)
            .map_err(|e| unavailable(e.message()))?;
    let api = ort::api();
    // SAFETY: `tensor` is a live string tensor of `count` elements, and `pointers` holds `count` NUL-terminated
    // strings inside `text`, which outlives the call (ONNX Runtime copies them). A non-null status is read and
    // released here.
    unsafe {
        let status = (api.FillStringTensor)(tensor.ptr_mut(), pointers.as_ptr(), pointers.len());
        if !status.0.is_null() {
            let detail = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0)).to_string_lossy().into_owned();
            (api.ReleaseStatus)(status.0);
            return Err(unavailable(&detail));
        }
    }
    Ok(tensor)
}

pub(crate) fn from_ort_value(name: &str, value: &DynValue, f16_as_f32: bool, limit: Limit) -> Result<Tensor> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(Error::InferenceFailed {
            reason: format!("output `{name}` is not a tensor; only tensor outputs are supported"),
        });
    };
    let element_type = element_type_of(*ty).ok_or_else(|| Error::InferenceFailed {
        reason: format!("output `{name}` has unsupported element type {ty}"),
    })?;
    let what = || format!("the copy of output `{name}`");
    if element_type == ElementType::String {
        let (shape, strings) = value.try_extract_strings().or_inference(format_args!("reading output `{name}`"))?;
        let bytes: usize = strings.iter().map(|s| 4 + s.len()).sum();
        let mut data = limit.vec(bytes, what)?;
        data.extend_from_slice(&crate::tensor::encode_strings(&strings));
        return Ok(Tensor { name: name.to_owned(), element_type, shape: shape.to_vec(), data });
    }
    if f16_as_f32 && element_type == ElementType::F16 {
        use half::slice::HalfFloatSliceExt;
        let (shape, halves) = value.try_extract_tensor::<f16>().or_internal(format_args!("reading output `{name}`"))?;
        let mut data = limit.zeroed(halves.len(), 4, what)?;
        match bytemuck::try_cast_slice_mut::<u8, f32>(&mut data) {
            Ok(floats) => halves.convert_to_f32_slice(floats),
            // An empty buffer (its dangling pointer has no f32 alignment) or an allocator that aligns less than 4.
            Err(_) => {
                for (half, out) in halves.iter().zip(data.chunks_exact_mut(4)) {
                    out.copy_from_slice(&half.to_f32().to_le_bytes());
                }
            }
        }
        return Ok(Tensor { name: name.to_owned(), element_type: ElementType::F32, shape: shape.to_vec(), data });
    }
    let copy = |bytes: &[u8]| -> Result<Vec<u8>> {
        let mut data = limit.vec(bytes.len(), what)?;
        data.extend_from_slice(bytes);
        Ok(data)
    };
    let (shape, data) = with_pod_type!(element_type, T => {
        let (shape, data) = value.try_extract_tensor::<T>().or_internal(format_args!("reading output `{name}`"))?;
        (shape.to_vec(), copy(bytemuck::cast_slice::<T, u8>(data))?)
    }, bool => {
        let (shape, data) = value.try_extract_tensor::<bool>().or_internal(format_args!("reading output `{name}`"))?;
        // SAFETY: bool is one byte holding 0 or 1.
        (shape.to_vec(), copy(unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), data.len()) })?)
    });
    Ok(Tensor { name: name.to_owned(), element_type, shape, data })
}

/// Writes output `name` into `dest`, which must hold exactly its bytes (float16 converted to float32 when
/// `f16_as_f32`): the caller-owned buffers of [`crate::Engine::run_into`].
pub(crate) fn fill_ort_value(name: &str, value: &DynValue, f16_as_f32: bool, dest: &mut [u8]) -> Result<()> {
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(Error::InferenceFailed { reason: format!("output `{name}` is not a tensor") });
    };
    let element_type = element_type_of(*ty).ok_or_else(|| Error::InferenceFailed {
        reason: format!("output `{name}` has unsupported element type {ty}"),
    })?;
    let widen = f16_as_f32 && element_type == ElementType::F16;
    let size = if widen { 4 } else { element_type.size() };
    let mismatch = |bytes: usize| {
        Error::invalid_input(
            name,
            format!("the output buffer holds {} bytes, but this output needs {bytes} (shape {shape:?})", dest.len()),
        )
    };
    if element_type == ElementType::String {
        return Err(Error::invalid_input(name, "string outputs have no fixed size: give no buffer for them"));
    }
    let count = shape.num_elements();
    let bytes = count.checked_mul(size).ok_or_else(|| mismatch(usize::MAX))?;
    if bytes != dest.len() {
        return Err(mismatch(bytes));
    }
    if widen {
        let (_, halves) = value.try_extract_tensor::<f16>().or_internal(format_args!("reading output `{name}`"))?;
        for (half, out) in halves.iter().zip(dest.chunks_exact_mut(4)) {
            out.copy_from_slice(&half.to_f32().to_le_bytes());
        }
        return Ok(());
    }
    with_pod_type!(element_type, T => {
        let (_, data) = value.try_extract_tensor::<T>().or_internal(format_args!("reading output `{name}`"))?;
        dest.copy_from_slice(bytemuck::cast_slice::<T, u8>(data));
    }, bool => {
        let (_, data) = value.try_extract_tensor::<bool>().or_internal(format_args!("reading output `{name}`"))?;
        for (b, out) in data.iter().zip(dest.iter_mut()) {
            *out = u8::from(*b);
        }
    });
    Ok(())
}
