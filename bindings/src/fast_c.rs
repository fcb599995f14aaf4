//! The per-inference call from Swift without uniffi's serialisation of the input list (the declarations are
//! bindings/include/OpenAutoGLMFast.h): the Swift layer passes pointers it holds for the call (`withUnsafeBytes`),
//! outputs go into its buffers or come back in a result it reads in place and frees. A failed call returns 1 and
//! keeps its error for `take_fast_path_error` (uniffi), which Swift calls next; panics are caught here. The codes
//! are `request`'s, shared with the other doors.

use std::panic::AssertUnwindSafe;

use openautoglm as core;
use openautoglm::{Error, Tensor};

use crate::request::{self, InputName, WireInput};

/// One input: by position in the model, or (`index` == `u32::MAX`) by the UTF-8 name at `name`.
#[repr(C)]
pub struct OagInput {
    index: u32,
    name: *const u8,
    name_len: usize,
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
/// buffer), or 1 with the error kept for `take_fast_path_error`.
///
/// # Safety
/// `engine` (and `cancel`, when not 0) are the fast handles of objects the caller keeps alive for the call; the
/// arrays hold `input_count` and `output_count` entries whose pointers are valid for their lengths for the call;
/// `result` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openautoglm_fast_run(
    engine: i64,
    inputs: *const OagInput,
    input_count: usize,
    outputs: *const OagOutputBuffer,
    output_count: usize,
    priority: i32,
    timeout_us: i64,
    cancel: i64,
    result: *mut *mut OagResult,
) -> i32 {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller keeps the objects behind the handles alive; a null handle is refused.
        let engine = unsafe { (engine as *const core::Engine).as_ref() }.ok_or(Error::EngineClosed)?;
        // SAFETY: likewise for the token.
        let cancel = unsafe { (cancel as *const core::CancelToken).as_ref() }.cloned();
        // SAFETY: the arrays are valid for their lengths for the call (the caller's contract).
        let (inputs, buffers) = unsafe { (slice(inputs, input_count), slice(outputs, output_count)) };
        let options = request::options(request::priority(priority), timeout_us, cancel);
        // SAFETY: the pointers inside the arrays are valid for the call (the caller's contract).
        unsafe { run(engine, inputs, buffers, &options) }
    }))
    .unwrap_or_else(|panic| Err(request::panicked("the Swift fast path", &panic)));
    match outcome {
        Ok(tensors) => {
            let boxed = if tensors.iter().all(Option::is_none) {
                std::ptr::null_mut()
            } else {
                Box::into_raw(Box::new(OagResult(tensors)))
            };
            // SAFETY: `result` is writable (the caller's contract).
            unsafe { *result = boxed };
            0
        }
        Err(e) => {
            request::keep_error(e);
            1
        }
    }
}

/// `len` elements at `ptr`, or none when `len` is 0 (then `ptr` may be null or dangling).
///
/// # Safety
/// When `len` > 0, `ptr` points to `len` initialised elements that stay valid and unchanged for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    // SAFETY: the caller's contract above.
    if len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(ptr, len) } }
}

/// Runs `engine` on the caller's inputs and output buffers.
///
/// # Safety
/// The pointers inside `inputs` and `buffers` are valid for their lengths for the call, and each output buffer is
/// the call's alone (`openautoglm_fast_run`'s contract).
unsafe fn run(
    engine: &core::Engine,
    inputs: &[OagInput],
    buffers: &[OagOutputBuffer],
    options: &core::RunOptions,
) -> Result<Vec<Option<Tensor>>, Error> {
    let mut wire = Vec::with_capacity(inputs.len());
    for input in inputs {
        let name = if input.index == u32::MAX {
            // SAFETY: the name's bytes are valid for the call (the caller's contract).
            let bytes = unsafe { slice(input.name, input.name_len) };
            let name = std::str::from_utf8(bytes).map_err(|_| Error::internal("an input name that is not UTF-8"))?;
            InputName::Name(name)
        } else {
            InputName::Index(i64::from(input.index))
        };
        let code = i64::from(input.element_type);
        wire.push(WireInput {
            name,
            element_type: request::element_type(code).ok_or(code),
            // SAFETY: the shape and the bytes are valid for the call (the caller's contract).
            shape: unsafe { slice(input.shape, input.rank) },
            // SAFETY: as above.
            data: unsafe { slice(input.data, input.len) },
        });
    }
    let info = engine.info();
    let views = request::views(info, wire)?;
    let mut slots: Vec<Option<&mut [u8]>> = (0..info.outputs.len())
        .map(|k| {
            buffers
                .get(k)
                .filter(|b| !b.data.is_null())
                // SAFETY: the caller's buffer, valid and exclusively ours for its length for the call.
                .map(|b| unsafe { std::slice::from_raw_parts_mut(b.data, b.len) })
        })
        .collect();
    engine.run_into(&views, options, &mut slots)
}

/// Output `index` of `result`, viewed in place; false when that output went into the caller's buffer.
///
/// # Safety
/// `result` comes from `openautoglm_fast_run` and is not yet freed; `tensor` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openautoglm_fast_result_tensor(
    result: *const OagResult,
    index: usize,
    tensor: *mut OagTensor,
) -> bool {
    // SAFETY: the caller's contract above.
    let Some(Some(t)) = (unsafe { result.as_ref() }).and_then(|r| r.0.get(index)) else { return false };
    // SAFETY: `tensor` is writable (the caller's contract); the pointers stay valid until the result is freed.
    unsafe {
        *tensor = OagTensor {
            element_type: request::type_code(t.element_type),
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
/// `result` comes from `openautoglm_fast_run` and is freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn openautoglm_fast_result_free(result: *mut OagResult) {
    if !result.is_null() {
        // SAFETY: made by Box::into_raw in openautoglm_fast_run, freed once (the caller's contract).
        drop(unsafe { Box::from_raw(result) });
    }
}
