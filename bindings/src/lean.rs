//! The per-inference call from Swift without uniffi's serialisation of the input list (the declarations are
//! bindings/include/OpenAutoGLMLean.h): the Swift layer passes pointers it holds for the call (`withUnsafeBytes`),
//! outputs go into its buffers or come back in a result it reads in place and frees. Errors are the same serialised
//! `NativeError` uniffi returns, lifted by the generated Swift code; panics are caught here.

use std::panic::AssertUnwindSafe;

use openautoglm as core;
use openautoglm::{Error, Tensor, TensorRef};
use uniffi::RustBuffer;

use crate::{NativeError, codes};

#[repr(C)]
pub struct OagInput {
    index: u32,
    element_type: u32,
    data: *const u8,
    len: usize,
    shape: *const i64,
    rank: usize,
}

#[repr(C)]
pub struct OagOutputBuffer {
    data: *mut u8,
    len: usize,
}

#[repr(C)]
pub struct OagTensor {
    element_type: u32,
    shape: *const i64,
    rank: usize,
    data: *const u8,
    len: usize,
}

/// The outputs the engine allocated (`None` where the caller gave a buffer).
pub struct OagResult(Vec<Option<Tensor>>);

/// Runs the engine whose fast handle is `engine`. Returns 0 and sets `*result` (null when every output had a
/// buffer), or 1 with `*error` set.
///
/// # Safety
/// `engine` (and `cancel`, when not 0) are the fast handles of objects the caller keeps alive for the call; the
/// arrays hold `input_count` and `output_count` entries whose pointers are valid for their lengths for the call;
/// `result` and `error` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openautoglm_lean_run(
    engine: i64,
    inputs: *const OagInput,
    input_count: usize,
    outputs: *const OagOutputBuffer,
    output_count: usize,
    priority: i32,
    timeout_us: i64,
    cancel: i64,
    result: *mut *mut OagResult,
    error: *mut RustBuffer,
) -> i32 {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's contract above.
        unsafe { run(engine, inputs, input_count, outputs, output_count, priority, timeout_us, cancel) }
    }))
    .unwrap_or_else(|panic| Err(codes::panicked("the Swift lean path", &panic)));
    // SAFETY: both out-pointers are writable (the caller's contract).
    unsafe {
        match outcome {
            Ok(tensors) => {
                *result = if tensors.iter().all(Option::is_none) {
                    std::ptr::null_mut()
                } else {
                    Box::into_raw(Box::new(OagResult(tensors)))
                };
                0
            }
            Err(e) => {
                *error = <NativeError as uniffi::LowerError<crate::UniFfiTag>>::lower_error(e);
                1
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn run(
    engine: i64,
    inputs: *const OagInput,
    input_count: usize,
    outputs: *const OagOutputBuffer,
    output_count: usize,
    priority: i32,
    timeout_us: i64,
    cancel: i64,
) -> Result<Vec<Option<Tensor>>, Error> {
    // SAFETY: the caller keeps the objects behind the handles alive; a null handle is refused.
    let engine = unsafe { (engine as *const core::Engine).as_ref() }.ok_or(Error::EngineClosed)?;
    let cancel = unsafe { (cancel as *const core::CancelToken).as_ref() }.cloned();
    let slice =
        |ptr: *const u8, len: usize| if len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(ptr, len) } };
    let inputs = if input_count == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(inputs, input_count) } };
    let info = engine.info();
    let bad = |what: &str| Error::internal(format!("malformed request from the Swift layer ({what})"));
    let views = inputs
        .iter()
        .map(|input| {
            let name = info.inputs.get(input.index as usize).ok_or_else(|| bad("input index"))?;
            let ty = codes::element_type(i64::from(input.element_type)).ok_or_else(|| bad("type"))?;
            let shape =
                if input.rank == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(input.shape, input.rank) } };
            Ok((name.name.as_str(), TensorRef::from_bytes(ty, shape, slice(input.data, input.len))))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let buffers =
        if output_count == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(outputs, output_count) } };
    let mut slots: Vec<Option<&mut [u8]>> = (0..info.outputs.len())
        .map(|k| {
            buffers
                .get(k)
                .filter(|b| !b.data.is_null())
                .map(|b| unsafe { std::slice::from_raw_parts_mut(b.data, b.len) })
        })
        .collect();
    let options =
        core::RunOptions { priority: codes::priority(priority), deadline: codes::deadline(timeout_us), cancel };
    engine.run_into(&views, &options, &mut slots)
}

/// Output `index` of `result`, viewed in place; false when that output went into the caller's buffer.
///
/// # Safety
/// `result` comes from `openautoglm_lean_run` and is not yet freed; `tensor` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openautoglm_lean_result_tensor(
    result: *const OagResult,
    index: usize,
    tensor: *mut OagTensor,
) -> bool {
    // SAFETY: the caller's contract above.
    let Some(Some(t)) = (unsafe { result.as_ref() }).and_then(|r| r.0.get(index)) else { return false };
    unsafe {
        *tensor = OagTensor {
            element_type: codes::type_code(t.element_type) as u32,
            shape: t.shape.as_ptr(),
            rank: t.shape.len(),
            data: t.data.as_ptr(),
            len: t.data.len(),
        };
    }
    true
}

/// Frees a result (null is fine).
///
/// # Safety
/// `result` comes from `openautoglm_lean_run` and is freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openautoglm_lean_result_free(result: *mut OagResult) {
    if !result.is_null() {
        // SAFETY: made by Box::into_raw in openautoglm_lean_run, freed once (the caller's contract).
        drop(unsafe { Box::from_raw(result) });
    }
}
