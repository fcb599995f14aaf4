//! The per-inference call from Kotlin over JNI: one native call, inputs read in place from direct ByteBuffers,
//! outputs written into the caller's direct ByteBuffers where given. Everything else (loading, info, close, config)
//! stays on the uniffi object, which owns the engine: Kotlin passes that object along with every call, so the JNI
//! local reference keeps it, and the engine inside it, alive until the call returns. A closed engine answers
//! `EngineClosed`; panics are caught here. A failed call sets `status[0]` to 1 and keeps its error for
//! `take_fast_path_error` (uniffi), which Kotlin calls next: errors reach Kotlin as from every other call.
//!
//! The request travels as one `long[]` layout, so Kotlin builds no objects per call:
//! `[input count, then per input: model input index (or -1: the name is in names[i]), element type code, byte
//!   offset, byte length, rank, dims..., then per output: byte offset, byte length (ignored where no buffer is
//!   given)]`, with the buffers alongside. The codes are `request`'s, shared with the other doors.

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use jni::JNIEnv;
use jni::objects::{GlobalRef, JByteBuffer, JClass, JIntArray, JLongArray, JMethodID, JObject, JObjectArray, JString};
use jni::sys::{jint, jlong, jobjectArray, jvalue};
use openautoglm as core;
use openautoglm::Error;

use crate::request::{self, InputName, WireInput};

/// `ai.openautoglm.FastPath.run`: see the module docs for the arguments. Returns null when every output went into
/// a caller's buffer or the call failed (then `status[0]` is 1), else one `FastPath.Output` (or null) per output.
#[unsafe(no_mangle)]
pub extern "system" fn Java_ai_openautoglm_FastPath_run<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    _owner: JObject<'l>,
    engine: jlong,
    inputs: JObjectArray<'l>,
    names: JObjectArray<'l>,
    layout: JLongArray<'l>,
    outputs: JObjectArray<'l>,
    priority: jint,
    timeout_us: jlong,
    _cancel_owner: JObject<'l>,
    cancel: jlong,
    status: JIntArray<'l>,
) -> jobjectArray {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `engine` is NativeEngine::fast_handle() of the object passed as `_owner`, which this call's local
        // reference keeps alive; a null handle is refused.
        let engine = unsafe { (engine as *const core::Engine).as_ref() }.ok_or(Error::EngineClosed)?;
        // SAFETY: likewise for the cancel token and `_cancel_owner`.
        let cancel = unsafe { (cancel as *const core::CancelToken).as_ref() }.cloned();
        let door = Door { inputs: &inputs, names: &names, layout: &layout, outputs: &outputs };
        run(&mut env, engine, &door, request::options(request::priority(priority), timeout_us, cancel))
    }));
    match result.unwrap_or_else(|panic| Err(request::panicked("the JNI path", &panic))) {
        Ok(array) => array,
        Err(error) => {
            request::keep_error(error);
            let _ = env.set_int_array_region(&status, 0, &[1]);
            std::ptr::null_mut()
        }
    }
}

/// The call's Java arrays.
struct Door<'a, 'l> {
    inputs: &'a JObjectArray<'l>,
    names: &'a JObjectArray<'l>,
    layout: &'a JLongArray<'l>,
    outputs: &'a JObjectArray<'l>,
}

fn run<'l>(
    env: &mut JNIEnv<'l>,
    engine: &core::Engine,
    door: &Door<'_, 'l>,
    options: core::RunOptions,
) -> Result<jobjectArray, Error> {
    let jni = |e: jni::errors::Error| Error::internal(format!("JNI: {e}"));
    let len = env.get_array_length(door.layout).map_err(jni)? as usize;
    let mut words = vec![0i64; len];
    env.get_long_array_region(door.layout, 0, &mut words).map_err(jni)?;
    let info = engine.info();
    let bad = |what: &str| Error::internal(format!("malformed request layout from the Kotlin layer ({what})"));

    // First pass: where each input's fields are, and the names of inputs sent by name (owned for the call).
    let count = usize::try_from(*words.first().ok_or_else(|| bad("empty"))?).map_err(|_| bad("count"))?;
    let mut fields = Vec::with_capacity(count);
    let mut named: Vec<Option<String>> = Vec::with_capacity(count);
    let mut at = 1;
    for i in 0..count {
        let rank = words.get(at + 4).copied().ok_or_else(|| bad("truncated"))?;
        let rank = usize::try_from(rank).map_err(|_| bad("rank"))?;
        if at + 5 + rank > words.len() {
            return Err(bad("shape"));
        }
        fields.push(at);
        named.push(if words[at] < 0 {
            let name = JString::from(env.get_object_array_element(door.names, i as i32).map_err(jni)?);
            Some(env.get_string(&name).map_err(jni)?.into())
        } else {
            None
        });
        at += 5 + rank;
    }
    // The input buffers stay referenced (local refs) while their bytes are viewed.
    let mut buffers = Vec::with_capacity(count);
    let mut wire = Vec::with_capacity(count);
    for (i, (&at, name)) in fields.iter().zip(&named).enumerate() {
        let [index, code, offset, length, rank] = [0, 1, 2, 3, 4].map(|k| words[at + k]);
        let buffer = JByteBuffer::from(env.get_object_array_element(door.inputs, i as i32).map_err(jni)?);
        let shown =
            |index: i64| name.as_deref().or_else(|| Some(&info.inputs.get(index as usize)?.name)).unwrap_or("?");
        let (ptr, len) =
            direct_bytes(env, &buffer, offset, length).map_err(|reason| Error::invalid_input(shown(index), reason))?;
        buffers.push(buffer);
        wire.push(WireInput {
            name: name.as_deref().map_or(InputName::Index(index), InputName::Name),
            element_type: request::element_type(code).ok_or(code),
            shape: &words[at + 5..at + 5 + rank as usize],
            // SAFETY: the bytes lie inside a direct buffer held by `buffers` for the rest of this call.
            data: unsafe { std::slice::from_raw_parts(ptr, len) },
        });
    }
    let views = request::views(info, wire)?;

    let mut out_buffers = Vec::with_capacity(info.outputs.len());
    let mut slots: Vec<Option<&mut [u8]>> = Vec::with_capacity(info.outputs.len());
    let given = !door.outputs.is_null();
    for (k, out) in info.outputs.iter().enumerate() {
        let element =
            if given { env.get_object_array_element(door.outputs, k as i32).map_err(jni)? } else { JObject::null() };
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

    let tensors = engine.run_into(&views, &options, &mut slots)?;
    if tensors.iter().all(Option::is_none) {
        return Ok(std::ptr::null_mut());
    }
    let output_class = output_class(env).map_err(jni)?;
    let class = <&JClass>::from(output_class.class.as_obj());
    let array = env.new_object_array(tensors.len() as i32, class, JObject::null()).map_err(jni)?;
    for (k, tensor) in tensors.iter().enumerate() {
        let Some(tensor) = tensor else { continue };
        let code = request::type_code(tensor.element_type) as jint;
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
