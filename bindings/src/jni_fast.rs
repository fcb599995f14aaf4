//! The per-inference call from Kotlin over JNI: one native call, inputs read in place from direct ByteBuffers,
//! outputs written into the caller's direct ByteBuffers where given. Everything else (loading, info, close, config)
//! stays on the uniffi object, which owns the engine: Kotlin passes that object along with every call, so the JNI
//! local reference keeps it, and the engine inside it, alive until the call returns. A closed engine answers
//! `EngineClosed`; panics are caught here and errors arrive as the Kotlin layer's `EngineException` subclasses.
//!
//! The request travels as one `long[]` layout, so Kotlin builds no objects per call:
//! `[input count, then per input: model input index, element type code, byte offset, byte length, rank, dims...,
//!   then per output: byte offset, byte length (ignored where no buffer is given)]`, with the buffers alongside.

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use jni::JNIEnv;
use jni::objects::{GlobalRef, JByteBuffer, JClass, JLongArray, JMethodID, JObject, JObjectArray, JThrowable};
use jni::sys::{jint, jlong, jobjectArray, jvalue};
use openautoglm as core;
use openautoglm::{Error, TensorRef};

use crate::codes;

/// `ai.openautoglm.FastPath.run`: see the module docs for the arguments. Returns null when every output went into
/// a caller's buffer, else one `FastPath.Output` (or null) per output.
#[unsafe(no_mangle)]
pub extern "system" fn Java_ai_openautoglm_FastPath_run<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    _owner: JObject<'l>,
    engine: jlong,
    inputs: JObjectArray<'l>,
    layout: JLongArray<'l>,
    outputs: JObjectArray<'l>,
    priority: jint,
    timeout_us: jlong,
    _cancel_owner: JObject<'l>,
    cancel: jlong,
) -> jobjectArray {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `engine` is NativeEngine::fast_handle() of the object passed as `_owner`, which this call's local
        // reference keeps alive; a null handle is refused.
        let engine = unsafe { (engine as *const core::Engine).as_ref() }.ok_or(Error::EngineClosed)?;
        // SAFETY: likewise for the cancel token and `_cancel_owner`.
        let cancel = unsafe { (cancel as *const core::CancelToken).as_ref() }.cloned();
        run(&mut env, engine, &inputs, &layout, &outputs, priority, timeout_us, cancel)
    }));
    let outcome = result.unwrap_or_else(|panic| Err(codes::panicked("the JNI path", &panic)));
    match outcome {
        Ok(array) => array,
        Err(error) => {
            throw(&mut env, &error);
            std::ptr::null_mut()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run<'l>(
    env: &mut JNIEnv<'l>,
    engine: &core::Engine,
    inputs: &JObjectArray<'l>,
    layout: &JLongArray<'l>,
    outputs: &JObjectArray<'l>,
    priority: jint,
    timeout_us: jlong,
    cancel: Option<core::CancelToken>,
) -> Result<jobjectArray, Error> {
    let jni = |e: jni::errors::Error| Error::internal(format!("JNI: {e}"));
    let len = env.get_array_length(layout).map_err(jni)? as usize;
    let mut words = vec![0i64; len];
    env.get_long_array_region(layout, 0, &mut words).map_err(jni)?;
    let info = engine.info();
    let bad = |what: &str| Error::internal(format!("malformed request layout from the Kotlin layer ({what})"));

    // The input buffers stay referenced (local refs) while their bytes are viewed.
    let count = usize::try_from(*words.first().ok_or_else(|| bad("empty"))?).map_err(|_| bad("count"))?;
    let mut buffers = Vec::with_capacity(count);
    let mut specs = Vec::with_capacity(count);
    let mut at = 1;
    for i in 0..count {
        let field = |k: usize| words.get(at + k).copied().ok_or_else(|| bad("truncated"));
        let (index, code, offset, length, rank) = (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
        let rank = usize::try_from(rank).map_err(|_| bad("rank"))?;
        let shape_at = at + 5;
        at = shape_at + rank;
        if at > words.len() {
            return Err(bad("shape"));
        }
        let name = usize::try_from(index).ok().and_then(|i| info.inputs.get(i)).ok_or_else(|| bad("input index"))?;
        let element_type = codes::element_type(code).ok_or_else(|| bad("type"))?;
        let buffer = JByteBuffer::from(env.get_object_array_element(inputs, i as i32).map_err(jni)?);
        let bytes =
            direct_bytes(env, &buffer, offset, length).map_err(|reason| Error::invalid_input(&name.name, reason))?;
        buffers.push(buffer);
        specs.push((name.name.as_str(), element_type, (shape_at, rank), bytes));
    }
    let views: Vec<(&str, TensorRef<'_>)> = specs
        .iter()
        .map(|(name, ty, (shape_at, rank), bytes)| {
            // SAFETY: the bytes lie inside a direct buffer held by `buffers` for the rest of this call.
            let data = unsafe { std::slice::from_raw_parts(bytes.0, bytes.1) };
            (*name, TensorRef::from_bytes(*ty, &words[*shape_at..*shape_at + *rank], data))
        })
        .collect();

    let mut out_buffers = Vec::with_capacity(info.outputs.len());
    let mut slots: Vec<Option<&mut [u8]>> = Vec::with_capacity(info.outputs.len());
    let given = !outputs.is_null();
    for (k, out) in info.outputs.iter().enumerate() {
        let element =
            if given { env.get_object_array_element(outputs, k as i32).map_err(jni)? } else { JObject::null() };
        if element.is_null() {
            slots.push(None);
            continue;
        }
        let field = |j: usize| words.get(at + 2 * k + j).copied().ok_or_else(|| bad("output layout"));
        let buffer = JByteBuffer::from(element);
        let (ptr, len) = direct_bytes(env, &buffer, field(0)?, field(1)?)
            .map_err(|reason| Error::invalid_input(&out.name, reason))?;
        out_buffers.push(buffer);
        // SAFETY: the region lies inside a direct buffer held by `out_buffers`; Kotlin gives each output its own.
        slots.push(Some(unsafe { std::slice::from_raw_parts_mut(ptr.cast_mut(), len) }));
    }

    let options =
        core::RunOptions { priority: codes::priority(priority), deadline: codes::deadline(timeout_us), cancel };
    let tensors = engine.run_into(&views, &options, &mut slots)?;
    if tensors.iter().all(Option::is_none) {
        return Ok(std::ptr::null_mut());
    }
    let output_class = output_class(env).map_err(jni)?;
    let class = <&JClass>::from(output_class.class.as_obj());
    let array = env.new_object_array(tensors.len() as i32, class, JObject::null()).map_err(jni)?;
    for (k, tensor) in tensors.iter().enumerate() {
        let Some(tensor) = tensor else { continue };
        let code = codes::type_code(tensor.element_type);
        let shape = env.new_long_array(tensor.shape.len() as i32).map_err(jni)?;
        env.set_long_array_region(&shape, 0, &tensor.shape).map_err(jni)?;
        let data = env.byte_array_from_slice(&tensor.data).map_err(jni)?;
        let args = [jvalue { i: code }, jvalue { l: shape.as_raw() }, jvalue { l: data.as_raw() }];
        // SAFETY: the constructor was looked up with this signature (int, long[], byte[]) on this class.
        let output = unsafe { env.new_object_unchecked(class, output_class.ctor, &args) }.map_err(jni)?;
        env.set_object_array_element(&array, k as i32, output).map_err(jni)?;
    }
    Ok(array.into_raw())
}

/// `FastPath.Output` and its constructor, looked up once: a lookup by name per call would cost more than the call.
struct OutputClass {
    class: GlobalRef,
    ctor: JMethodID,
}

fn output_class(env: &mut JNIEnv<'_>) -> jni::errors::Result<&'static OutputClass> {
    static OUTPUT: OnceLock<OutputClass> = OnceLock::new();
    if let Some(found) = OUTPUT.get() {
        return Ok(found);
    }
    let class = env.find_class("ai/openautoglm/FastPath$Output")?;
    let ctor = env.get_method_id(&class, "<init>", "(I[J[B)V")?;
    let class = env.new_global_ref(class)?;
    Ok(OUTPUT.get_or_init(|| OutputClass { class, ctor }))
}

/// The address and length of `length` bytes from `offset` in a direct buffer; why not, for the caller's error.
fn direct_bytes(
    env: &JNIEnv<'_>,
    buffer: &JByteBuffer<'_>,
    offset: i64,
    length: i64,
) -> Result<(*const u8, usize), String> {
    if buffer.is_null() {
        return Err("no buffer given".into());
    }
    let address = env.get_direct_buffer_address(buffer).map_err(|_| "the ByteBuffer is not direct".to_string())?;
    let capacity = env.get_direct_buffer_capacity(buffer).map_err(|_| "the ByteBuffer is not direct".to_string())?;
    let (Ok(offset), Ok(length)) = (usize::try_from(offset), usize::try_from(length)) else {
        return Err(format!("bytes {offset}+{length} are not a valid range"));
    };
    if offset.checked_add(length).is_none_or(|end| end > capacity) {
        return Err(format!("bytes {offset}+{length} lie outside the {capacity}-byte buffer"));
    }
    // SAFETY: offset + length <= capacity of a direct buffer whose address the JVM gave.
    Ok((unsafe { address.add(offset) }.cast_const(), length))
}

/// Throws `error` as the Kotlin layer's `EngineException` subclass of the same name.
fn throw(env: &mut JNIEnv<'_>, error: &Error) {
    let (class, args): (&str, Vec<String>) = match error {
        Error::RuntimeUnavailable { path, reason } => ("RuntimeUnavailable", vec![path.clone(), reason.clone()]),
        Error::ModelNotFound { path } => ("ModelNotFound", vec![path.clone()]),
        Error::InvalidModel { reason } => ("InvalidModel", vec![reason.clone()]),
        Error::InvalidInput { name, reason } => ("InvalidInput", vec![name.clone(), reason.clone()]),
        Error::InvalidConfig { reason } => ("InvalidConfig", vec![reason.clone()]),
        Error::AcceleratorUnavailable { provider, reason } => {
            ("AcceleratorUnavailable", vec![provider.clone(), reason.clone()])
        }
        Error::InferenceFailed { reason } => ("InferenceFailed", vec![reason.clone()]),
        Error::MemoryLimit { reason } => ("MemoryLimit", vec![reason.clone()]),
        Error::Cancelled => ("Cancelled", vec![]),
        Error::DeadlineExceeded => ("DeadlineExceeded", vec![]),
        Error::ChatBusy { reason } => ("ChatBusy", vec![reason.clone()]),
        Error::EngineClosed => ("EngineClosed", vec![]),
        Error::Internal { reason } => ("Internal", vec![reason.clone()]),
    };
    let thrown = (|| -> jni::errors::Result<()> {
        let strings = args.iter().map(|a| env.new_string(a)).collect::<jni::errors::Result<Vec<_>>>()?;
        let values: Vec<jvalue> = strings.iter().map(|s| jvalue { l: s.as_raw() }).collect();
        let signature = format!("({})V", "Ljava/lang/String;".repeat(values.len()));
        let class = env.find_class(format!("ai/openautoglm/EngineException${class}"))?;
        let ctor = env.get_method_id(&class, "<init>", signature)?;
        // SAFETY: the constructor was looked up with exactly these argument types (Strings), on this class. (Not
        // `new_object`, whose signature parser would add a parser library to every app's binary.)
        let exception = unsafe { env.new_object_unchecked(&class, ctor, &values) }?;
        env.throw(JThrowable::from(exception))
    })();
    if thrown.is_err() && !env.exception_check().unwrap_or(false) {
        let _ = env.throw_new("java/lang/IllegalStateException", error.to_string());
    }
}
