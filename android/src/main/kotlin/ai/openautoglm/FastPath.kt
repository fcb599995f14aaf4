package ai.openautoglm

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The per-inference fast path over JNI (bindings/src/fast_jni.rs; Swift's `fastPath` is the same path through C):
 * one native call with the inputs' direct buffers read in place and no objects built per call; everything else goes
 * through the uniffi object. A failed call sets `status[0]`, and its error is then taken through uniffi
 * ([takeFastPathError]), so it is mapped where every native error is. When the JVM cannot load the library itself
 * (it is found by JNA only), engines use the uniffi call instead, with the same results and errors.
 */
internal object FastPath {
    /** An output the engine allocated: element type code (the ElementType ordinal), shape and bytes. */
    class Output(@JvmField val type: Int, @JvmField val shape: LongArray, @JvmField val data: ByteArray)

    /** Whether the JNI entry point is loaded (then every engine uses it unless told otherwise). */
    val available: Boolean by lazy {
        try {
            val path = System.getProperty("uniffi.component.openautoglm_ffi.libraryOverride")
            if (path != null && File(path).isAbsolute) System.load(path) else System.loadLibrary("openautoglm_ffi")
            true
        } catch (e: UnsatisfiedLinkError) {
            false
        }
    }

    /**
     * Runs [owner]'s engine ([engine] is its `fastHandle`). [owner] and [cancelOwner] travel with their handles so
     * that they stay reachable, and their native objects alive, for the whole call. [names] holds the names of
     * inputs sent by name (layout index -1); [status] gets 1 when the call failed.
     */
    @JvmStatic external fun run(
        owner: Any,
        engine: Long,
        inputs: Array<Any?>,
        names: Array<String?>,
        layout: LongArray,
        outputs: Array<Any?>?,
        priority: Int,
        timeoutUs: Long,
        cancelOwner: Any?,
        cancel: Long,
        status: IntArray,
    ): Array<Output?>?

    /** One request's arrays, reused by each thread: the steady state allocates nothing for them. */
    class Request {
        var inputs = arrayOfNulls<Any>(4)
        var names = arrayOfNulls<String>(4)
        var outputs = arrayOfNulls<Any>(4)
        val status = IntArray(1)
        var layout = LongArray(64)
        var staging: ByteBuffer = ByteBuffer.allocateDirect(0).order(ByteOrder.LITTLE_ENDIAN)

        /**
         * Lays out [tensors] (their model input indices from [index]; a name the model lacks goes by name, and the
         * engine refuses it by name) and the caller's [into] buffers (by model output order, [outputCount] of them).
         * Heap buffers, such as an earlier output fed back, are staged into one reused direct buffer.
         */
        fun build(tensors: Map<String, Tensor>, index: Map<String, Int>, into: Array<ByteBuffer?>?, outputCount: Int) {
            if (inputs.size < tensors.size) {
                inputs = arrayOfNulls(tensors.size)
                names = arrayOfNulls(tensors.size)
            }
            var words = 1 + tensors.size * 5 + 2 * outputCount
            var heapBytes = 0
            for (t in tensors.values) {
                words += t.rank
                if (!t.buffer.isDirect) heapBytes += t.byteSize
            }
            if (layout.size < words) layout = LongArray(words)
            if (heapBytes > 0 && staging.capacity() < heapBytes) staging = ByteBuffer.allocateDirect(heapBytes).order(ByteOrder.LITTLE_ENDIAN)
            staging.clear()
            layout[0] = tensors.size.toLong()
            var at = 1
            var i = 0
            for ((name, t) in tensors) {
                t.refusal?.let { throw EngineException.InvalidInput(name, it) }
                val position = index[name]
                names[i] = if (position == null) name else null
                val offset = if (t.buffer.isDirect) 0 else staging.position().also { staging.put(t.buffer.duplicate().rewind() as ByteBuffer) }
                inputs[i++] = if (t.buffer.isDirect) t.buffer else staging
                layout[at] = position?.toLong() ?: -1L
                layout[at + 1] = t.elementType.ordinal.toLong()
                layout[at + 2] = offset.toLong()
                layout[at + 3] = t.byteSize.toLong()
                layout[at + 4] = t.rank.toLong()
                t.copyShapeInto(layout, at + 5)
                at += 5 + t.rank
            }
            if (into != null) {
                if (outputs.size < outputCount) outputs = arrayOfNulls(outputCount)
                for (k in 0 until outputCount) {
                    val buffer = into[k]
                    outputs[k] = buffer
                    layout[at + 2 * k] = (buffer?.position() ?: 0).toLong()
                    layout[at + 2 * k + 1] = (buffer?.remaining() ?: 0).toLong()
                }
            }
            status[0] = 0
        }
    }

    val requests: ThreadLocal<Request> = ThreadLocal.withInitial { Request() }
}
