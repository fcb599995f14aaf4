//! The request codec behind the three doors into an engine: uniffi (`NativeEngine::run`, `NativeCascade::run`), the
//! JNI fast path for Kotlin (`fast_jni`) and the C fast path for Swift (`fast_c`). Each door only unpacks its wire
//! form into [`WireInput`]s; what the numbers mean (element type and priority codes, the deadline), how inputs
//! become the engine's views (an index resolved to the model's input name, an unknown name passed on so the engine
//! words the error as for every caller) and how a fast-path error reaches the caller (the uniffi error of
//! [`take_fast_path_error`], mapped once in each language) live here.

use openautoglm as core;
use openautoglm::{ElementType, Error, ModelInfo, Priority, TensorRef};
use std::cell::RefCell;

use crate::{InputSpec, NativeError};

/// Element types as the fast paths send them: the declaration order, which the generated Kotlin enum keeps as
/// `ordinal` and Swift's `ElementType.code` reads from [`element_type_code`] (both checked by tests).
const TYPES: [ElementType; 14] = [
    ElementType::F32,
    ElementType::F16,
    ElementType::F64,
    ElementType::I8,
    ElementType::U8,
    ElementType::I16,
    ElementType::U16,
    ElementType::I32,
    ElementType::U32,
    ElementType::I64,
    ElementType::U64,
    ElementType::Bool,
    ElementType::Bf16,
    ElementType::String,
];

pub(crate) fn element_type(code: i64) -> Option<ElementType> {
    usize::try_from(code).ok().and_then(|c| TYPES.get(c)).copied()
}

pub(crate) fn type_code(ty: ElementType) -> u32 {
    TYPES.iter().position(|t| *t == ty).unwrap_or(0) as u32
}

// The code the fast paths send for `element_type` (the Kotlin and Swift tests hold their constants to it).
#[uniffi::export]
pub fn element_type_code(element_type: ElementType) -> u32 {
    type_code(element_type)
}

/// Priorities as the fast paths send them: the declaration order (`Priority.ordinal` in Kotlin, `code` in Swift).
pub(crate) fn priority(code: i32) -> Priority {
    const PRIORITIES: [Priority; 3] = [Priority::Interactive, Priority::Normal, Priority::Background];
    usize::try_from(code).ok().and_then(|p| PRIORITIES.get(p)).copied().unwrap_or_default()
}

/// The one deadline encoding of every door: microseconds from now, 0 when it has passed already, negative for none
/// (uniffi's `None` is sent as -1). A timeout past what the clock holds is no deadline either.
pub(crate) fn deadline(timeout_us: i64) -> Option<std::time::Instant> {
    u64::try_from(timeout_us)
        .ok()
        .and_then(|us| std::time::Instant::now().checked_add(std::time::Duration::from_micros(us)))
}

/// A request's options, from the codes a door received.
pub(crate) fn options(priority: Priority, timeout_us: i64, cancel: Option<core::CancelToken>) -> core::RunOptions {
    core::RunOptions { priority, deadline: deadline(timeout_us), cancel }
}

/// The options of a uniffi call (engines and cascades alike): `None` is no deadline, and a negative timeout has
/// passed already.
pub(crate) fn uniffi_options(call: crate::CallOptions) -> core::RunOptions {
    options(call.priority, call.timeout_us.map_or(-1, |us| us.max(0)), call.cancel.map(|c| c.token.clone()))
}

/// How a door names an input: by its position in the model (the fast paths' usual case), or by a name the model may
/// not have (the engine then refuses it, naming it).
pub(crate) enum InputName<'a> {
    Index(i64),
    Name(&'a str),
}

/// One input as a door unpacked it.
pub(crate) struct WireInput<'a> {
    pub(crate) name: InputName<'a>,
    pub(crate) element_type: Result<ElementType, i64>,
    pub(crate) shape: &'a [i64],
    pub(crate) data: &'a [u8],
}

/// The inputs as the engine's views. A position or type code outside the model's is a bug in the Kotlin or Swift
/// layer, not the app's: `Internal`.
pub(crate) fn views<'a>(
    info: &'a ModelInfo,
    inputs: Vec<WireInput<'a>>,
) -> Result<Vec<(&'a str, TensorRef<'a>)>, Error> {
    let malformed = |what: String| Error::internal(format!("malformed fast-path request ({what})"));
    inputs
        .into_iter()
        .map(|input| {
            let name = match input.name {
                InputName::Name(name) => name,
                InputName::Index(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| info.inputs.get(i))
                    .map(|t| t.name.as_str())
                    .ok_or_else(|| malformed(format!("input index {i}")))?,
            };
            let ty = input.element_type.map_err(|code| malformed(format!("element type code {code}")))?;
            Ok((name, TensorRef::from_bytes(ty, input.shape, input.data)))
        })
        .collect()
}

/// The uniffi door's inputs: specs over one packed buffer, each range checked against it.
pub(crate) fn uniffi_views<'a>(
    inputs: &'a [InputSpec],
    data: &'a [u8],
) -> Result<Vec<(&'a str, TensorRef<'a>)>, NativeError> {
    inputs
        .iter()
        .map(|spec| {
            let bytes = usize::try_from(spec.offset)
                .ok()
                .zip(usize::try_from(spec.length).ok())
                .and_then(|(start, len)| data.get(start..start.checked_add(len)?))
                .ok_or_else(|| NativeError::InvalidInput {
                    name: spec.name.clone(),
                    reason: format!(
                        "bytes {}+{} lie outside the {}-byte input buffer",
                        spec.offset,
                        spec.length,
                        data.len()
                    ),
                })?;
            Ok((spec.name.as_str(), TensorRef::from_bytes(spec.element_type, &spec.shape, bytes)))
        })
        .collect()
}

thread_local! {
    /// The last fast-path error of this thread, until the caller takes it.
    static FAST_PATH_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Keeps a fast path's error for [`take_fast_path_error`]: the fast doors return only "failed", and the caller then
/// takes the error through uniffi, so one lowering (uniffi's) and one mapping per language serve all three doors.
pub(crate) fn keep_error(error: Error) {
    FAST_PATH_ERROR.with(|slot| *slot.borrow_mut() = Some(error));
}

// Throws the error of this thread's last failed fast-path call (the JNI or C entry returned "failed").
#[uniffi::export]
pub fn take_fast_path_error() -> Result<(), NativeError> {
    let error = FAST_PATH_ERROR.with(|slot| slot.borrow_mut().take());
    Err(error.unwrap_or_else(|| Error::internal("a fast-path call failed without an error")))
}

/// A caught panic as the error the caller receives.
pub(crate) fn panicked(at: &str, panic: &Box<dyn std::any::Any + Send>) -> Error {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    Error::internal(format!("panic in {at}: {}", text.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_refused() {
        for (code, ty) in TYPES.iter().enumerate() {
            assert_eq!(element_type(code as i64), Some(*ty));
            assert_eq!(type_code(*ty), code as u32);
        }
        assert_eq!(element_type(-1), None);
        assert_eq!(element_type(14), None);
        assert_eq!(priority(0), Priority::Interactive);
        assert_eq!(priority(99), Priority::Normal);
        assert!(deadline(-1).is_none() && deadline(0).is_some());
    }

    #[test]
    fn a_kept_error_is_taken_once() {
        keep_error(Error::Cancelled);
        assert_eq!(take_fast_path_error(), Err(Error::Cancelled));
        assert!(matches!(take_fast_path_error(), Err(Error::Internal { .. })));
    }
}
