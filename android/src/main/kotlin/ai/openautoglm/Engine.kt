package ai.openautoglm

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.time.Duration
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.withContext

/**
 * The default engine settings: the SDK's accelerator choice ([Accelerator.Auto]: on Android Qualcomm's QNN plugin on
 * the NPU when the app ships it, then XNNPACK where the ONNX Runtime package has it, then the CPU, and never NNAPI;
 * the CPU on a desktop JVM), graph optimization O3, ONNX Runtime's thread count and spinning, precision chosen by
 * the engine for bundles, float16 outputs returned as float32. Change what you need with `copy(...)`, e.g.
 * `DefaultEngineConfig.copy(cacheDir = context.cacheDir.path)` to compile once across launches; `engine.accelerators`
 * says what `Auto` resolved to.
 */
val DefaultEngineConfig = EngineConfig(
    accelerators = listOf(Accelerator.Auto),
    optimizeLevel = OptimizeLevel.O3,
    precision = Precision.AUTO,
)

/**
 * A loaded ONNX model. Thread-safe; close it (or use `use { }`) to release the model's memory at once.
 *
 * ```
 * Engine.fromFile(path).use { engine ->
 *     val out = engine.infer(mapOf("x" to Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4)))
 *     val y = out.getValue("y").toFloatArray()
 * }
 * ```
 * Every failure is an [EngineException] subclass (ModelNotFound, InvalidModel, InvalidInput, EngineClosed, ...).
 */
class Engine internal constructor(internal val native: NativeEngine) : AutoCloseable {
    /** Inputs, outputs and metadata of the model. */
    val info: ModelInfo = native.info()

    /** Which accelerators are in use, and why any others asked for were skipped. */
    val accelerators: AcceleratorReport = native.accelerators()

    /** Which provider ran how many nodes in how many partitions, with warnings; null unless `reportPlacement`. */
    val placement: Placement? = native.placement()

    /** The bundle variant running, and why; null for an engine loaded from one model file. */
    val precision: PrecisionChoice? = native.precision()

    /** What the compile cache did when this engine was built (HIT: graph optimization skipped). */
    val compileCache: CacheOutcome = native.compileCache()

    /** Runs served by each shape bucket (configuration order) and by the dynamic session, so far. */
    val shapeBucketStats: ShapeBucketStats get() = native.shapeBucketStats()

    val isClosed: Boolean get() = native.isClosed()

    /** Runs stopped part-way so an interactive run could go first, then started again (background work lost). */
    val preemptedRuns: Long get() = native.preemptedRuns()

    /**
     * Runs the model on the calling thread; prefer [infer] from coroutines. Outputs are in model order.
     *
     * [priority] orders the run among the others waiting in its lane (every engine on the same accelerator in this
     * process): [Priority.INTERACTIVE] goes first and stops background runs in progress (they start again after it).
     * A [deadline] (from now) or a [cancel] token stops the run, queued at once or running at its next node, with
     * [EngineException.DeadlineExceeded] / [EngineException.Cancelled]; a result is never delivered late.
     */
    @Throws(EngineException::class)
    @JvmOverloads
    fun inferBlocking(
        inputs: Map<String, Tensor>,
        priority: Priority = Priority.NORMAL,
        deadline: Duration? = null,
        cancel: CancelToken? = null,
    ): Map<String, Tensor> {
        val timeoutUs = timeoutMicros(deadline)
        if (useJni) return fast(inputs, null, priority, timeoutUs, cancel)
        val (specs, data) = packed(inputs)
        return outputsOf(native { native.run(specs, data, CallOptions(priority, timeoutUs, cancel)) })
    }

    /**
     * [inferBlocking] that writes outputs into buffers the app keeps across calls: [outputs] maps output names to
     * direct, little-endian ByteBuffers whose remaining bytes are exactly the output's (fixed-shape outputs; float16
     * ones as float32 unless the config keeps them). Nothing is allocated for those outputs; the ones without a
     * buffer come back in the returned map. A buffer of the wrong size is [EngineException.InvalidInput].
     * ```
     * val y = ByteBuffer.allocateDirect(3 * 4).order(ByteOrder.LITTLE_ENDIAN)
     * repeat(1000) { engine.inferIntoBlocking(mapOf("x" to x), mapOf("y" to y)); /* read y */ }
     * ```
     */
    @Throws(EngineException::class)
    @JvmOverloads
    fun inferIntoBlocking(
        inputs: Map<String, Tensor>,
        outputs: Map<String, ByteBuffer>,
        priority: Priority = Priority.NORMAL,
        deadline: Duration? = null,
        cancel: CancelToken? = null,
    ): Map<String, Tensor> {
        val timeoutUs = timeoutMicros(deadline)
        val into = arrayOfNulls<ByteBuffer>(outputIndex.size)
        for ((name, buffer) in outputs) {
            val k = outputIndex[name] ?: throw EngineException.InvalidInput(name, "the model has no such output (outputs: ${outputIndex.keys})")
            if (!buffer.isDirect) throw EngineException.InvalidInput(name, "output buffers must be direct (ByteBuffer.allocateDirect)")
            if (buffer.order() != ByteOrder.LITTLE_ENDIAN) {
                throw EngineException.InvalidInput(name, "the output buffer is BIG_ENDIAN; call order(ByteOrder.LITTLE_ENDIAN) on it")
            }
            into[k] = buffer
        }
        if (useJni) return fast(inputs, into, priority, timeoutUs, cancel)
        // Without the JNI path: the uniffi call, then one copy per output into its buffer.
        val (specs, data) = packed(inputs)
        val all = native { native.run(specs, data, CallOptions(priority, timeoutUs, cancel)) }.associate { it.name to Tensor.fromNative(it) }
        val rest = LinkedHashMap<String, Tensor>()
        for ((name, tensor) in all) {
            val buffer = into[outputIndex.getValue(name)]
            if (buffer == null) { rest[name] = tensor; continue }
            if (buffer.remaining() != tensor.byteSize) {
                throw EngineException.InvalidInput(name, "the output buffer holds ${buffer.remaining()} bytes, but this output needs ${tensor.byteSize} (shape ${tensor.shape.contentToString()})")
            }
            buffer.duplicate().put(tensor.buffer.duplicate().rewind() as ByteBuffer)
        }
        return rest
    }

    /** Whether runs take the JNI path (tests turn it off to check the uniffi path gives the same). */
    internal var useJni: Boolean = FastPath.available

    private val fastHandle: Long by lazy { native.fastHandle() }
    private val inputIndex: Map<String, Int> = info.inputs.withIndex().associate { (i, t) -> t.name to i }
    private val outputIndex: Map<String, Int> = info.outputs.withIndex().associate { (i, t) -> t.name to i }

    /** The run over the JNI fast path. */
    private fun fast(inputs: Map<String, Tensor>, into: Array<ByteBuffer?>?, priority: Priority, timeoutUs: Long?, cancel: CancelToken?): Map<String, Tensor> {
        val request = FastPath.requests.get()
        request.build(inputs, inputIndex, into, info.outputs.size)
        val produced = FastPath.run(
            native, fastHandle, request.inputs, request.names, request.layout, if (into == null) null else request.outputs,
            priority.ordinal, timeoutUs ?: -1L, cancel, cancel?.fastHandle() ?: 0L, request.status,
        )
        if (into != null) java.util.Arrays.fill(request.outputs, null) // do not keep the app's buffers reachable
        java.util.Arrays.fill(request.inputs, null)
        java.util.Arrays.fill(request.names, null)
        if (request.status[0] != 0) native { takeFastPathError() }
        if (produced == null) return emptyMap()
        val result = LinkedHashMap<String, Tensor>(produced.size)
        for ((k, output) in produced.withIndex()) if (output != null) result[info.outputs[k].name] = Tensor.fromFast(output)
        return result
    }

    /**
     * Runs the model off the caller's thread ([Dispatchers.Default] unless told otherwise), scheduled as
     * [inferBlocking] describes. Cancelling the coroutine stops the run (queued at once, running at its next node);
     * the coroutine then ends with a CancellationException as structured concurrency expects.
     */
    @Throws(EngineException::class)
    suspend fun infer(
        inputs: Map<String, Tensor>,
        priority: Priority = Priority.NORMAL,
        deadline: Duration? = null,
        dispatcher: CoroutineDispatcher = Dispatchers.Default,
    ): Map<String, Tensor> = cancellable(dispatcher) { token -> inferBlocking(inputs, priority, deadline, token) }

    /**
     * Runs the model [runs] times on zero inputs of the declared shapes, so the slow first inference happens now
     * rather than on a user's request. Returns milliseconds per run.
     */
    @Throws(EngineException::class)
    suspend fun warmup(runs: Int = 1, dispatcher: CoroutineDispatcher = Dispatchers.Default): List<Double> =
        withContext(dispatcher) { warmupBlocking(runs) }

    /**
     * [warmup] with example inputs: the shapes an app will run, on every session. Use it (or [warmupDims]) when the
     * model cannot run with 1 for its dynamic dimensions.
     */
    @Throws(EngineException::class)
    suspend fun warmupWith(example: Map<String, Tensor>, runs: Int = 1, dispatcher: CoroutineDispatcher = Dispatchers.Default): List<Double> =
        withContext(dispatcher) {
            val (specs, data) = packed(example)
            native { native.warmupWith(specs, data, runs) }
        }

    /** [warmup] with zero inputs whose named dynamic dimensions take these sizes, e.g. `mapOf("time" to 1000L)`. */
    @Throws(EngineException::class)
    suspend fun warmupDims(dims: Map<String, Long>, runs: Int = 1, dispatcher: CoroutineDispatcher = Dispatchers.Default): List<Double> =
        withContext(dispatcher) {
            native { native.warmupDims(dims, runs) }
        }

    /** [warmup] on the calling thread. */
    @Throws(EngineException::class)
    fun warmupBlocking(runs: Int = 1): List<Double> = native { native.warmup(runs) }

    /** Releases the model now. Later calls throw [EngineException.EngineClosed]; closing twice is fine. */
    override fun close() {
        // Frees the model (the memory that matters) now. The small native handle stays valid so later calls get
        // EngineClosed rather than a destroyed-object error; uniffi's cleaner frees it with this object.
        native.release()
    }

    /** The inputs as specs over one buffer: the single input's own direct buffer, or all of them packed. */
    companion object {
        internal fun packed(inputs: Map<String, Tensor>): Pair<List<InputSpec>, ByteBuffer> {
            val specs = ArrayList<InputSpec>(inputs.size)
            var offset = 0L
            for ((name, tensor) in inputs) {
                tensor.refusal?.let { throw EngineException.InvalidInput(name, it) }
                specs += InputSpec(name, tensor.elementType, tensor.shape.asList(), offset, tensor.byteSize.toLong())
                offset += tensor.byteSize
            }
            val single = inputs.values.singleOrNull()?.buffer
            return specs to (if (single != null && single.isDirect) single else pack(inputs.values, offset))
        }

        private fun pack(tensors: Collection<Tensor>, total: Long): ByteBuffer {
            if (total > Int.MAX_VALUE) throw IllegalArgumentException("inputs total $total bytes, more than one call can carry")
            val buffer = scratch.get().let { if (it.capacity() >= total) it else ByteBuffer.allocateDirect(total.toInt()).also(scratch::set) }
            buffer.clear()
            for (tensor in tensors) buffer.put(tensor.buffer.duplicate().rewind() as ByteBuffer)
            buffer.flip()
            return buffer
        }

        /** A deadline from now as the native calls take it: microseconds, 0 when it has passed already. */
        internal fun timeoutMicros(deadline: Duration?): Long? =
            deadline?.let { if (it.isPositive()) it.inWholeMicroseconds else 0L }

        /** Native outputs by name, in model order. */
        internal fun outputsOf(outputs: List<NativeTensor>): Map<String, Tensor> {
            val result = LinkedHashMap<String, Tensor>(outputs.size)
            for (output in outputs) result[output.name] = Tensor.fromNative(output)
            return result
        }

        /**
         * Runs [block] on [dispatcher] with a cancel token that the calling coroutine's cancellation cancels, so a
         * blocking native call stops rather than running to its end.
         */
        internal suspend fun <T> cancellable(dispatcher: CoroutineDispatcher, block: (CancelToken) -> T): T {
            val token = CancelToken()
            try {
                return coroutineScope {
                    // The work never fails as a child (that would replace the caller's CancellationException with
                    // the native Cancelled); its outcome is rethrown here.
                    val work = async(dispatcher) { runCatching { block(token) } }
                    val outcome = try {
                        work.await()
                    } catch (e: CancellationException) {
                        token.cancel()
                        throw e
                    }
                    outcome.getOrThrow()
                }
            } finally {
                token.close()
            }
        }

        // One reusable direct buffer per thread for packing several inputs: no allocation per inference.
        private val scratch = ThreadLocal.withInitial { ByteBuffer.allocateDirect(0).order(ByteOrder.LITTLE_ENDIAN) }

        /** Loads the model at [path]. */
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromFile(path: String, config: EngineConfig = DefaultEngineConfig): Engine {
            OpenAutoGLM.checkNativeLibrary()
            return Engine(native { NativeEngine.fromFile(path, config) })
        }

        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromFile(file: File, config: EngineConfig = DefaultEngineConfig): Engine = fromFile(file.path, config)

        /**
         * Loads from a model bundle directory (`bundle.json` and its variants, made by `cargo xtask models prepare`)
         * the variant `config.precision` selects; [precision] says which and why.
         */
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromBundle(dir: String, config: EngineConfig = DefaultEngineConfig): Engine {
            OpenAutoGLM.checkNativeLibrary()
            return Engine(native { NativeEngine.fromBundle(dir, config) })
        }

        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromBundle(dir: File, config: EngineConfig = DefaultEngineConfig): Engine = fromBundle(dir.path, config)

        /**
         * Loads the model stored [length] bytes from [offset] in the open file [fd], without copying it: an asset
         * stored uncompressed in the APK (`noCompress += "onnx"` in Gradle's androidResources), as
         * `AssetFileDescriptor` describes it:
         * ```
         * context.assets.openFd("model.onnx").use { afd ->
         *     Engine.fromFileDescriptor(afd.parcelFileDescriptor.fd, afd.startOffset, afd.length)
         * }
         * ```
         * The region is mapped while the engine is built; [fd] stays the caller's to close.
         */
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromFileDescriptor(fd: Int, offset: Long, length: Long, config: EngineConfig = DefaultEngineConfig): Engine {
            OpenAutoGLM.checkNativeLibrary()
            return Engine(native { NativeEngine.fromFd(fd, offset, length, config) })
        }

        /** Loads a model held in memory, e.g. read from app assets. */
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromBytes(model: ByteArray, config: EngineConfig = DefaultEngineConfig): Engine {
            OpenAutoGLM.checkNativeLibrary()
            val direct = ByteBuffer.allocateDirect(model.size).put(model)
            direct.flip()
            return Engine(native { NativeEngine.fromBytes(direct, config) })
        }
    }
}
