package ai.openautoglm

import kotlin.time.Duration
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers

/** What decides whether an input goes on from the fast engine to the main one. */
sealed interface Gate {
    /**
     * Escalate when the [confidence] read from [output] (scores along its last axis; softmax first with [logits])
     * is below [threshold].
     */
    data class Builtin(
        val confidence: Confidence,
        val output: String,
        val threshold: Float,
        val logits: Boolean = false,
    ) : Gate

    /** The app's own rule over the fast engine's outputs: `true` escalates. An exception in it fails that run. */
    class Custom(val escalate: (Map<String, Tensor>) -> Boolean) : Gate
}

/** A result, the path that produced it, and what a built-in gate read (null with a custom gate). */
data class CascadeResult(val outputs: Map<String, Tensor>, val path: CascadePath, val confidence: Float?)

/**
 * An adaptive pipeline: [fast] answers first and [gate] decides whether [main] must answer instead. Both engines run
 * with the request's priority, deadline and cancellation; they stay the app's (closing the cascade does not close
 * them). [counters] counts inputs, escalations and the time on each path.
 * ```
 * val cascade = Cascade(tiny, small, Gate.Builtin(Confidence.SEQUENCE_MEAN_MAX, "softmax", 0.9f))
 * val line = cascade.infer(mapOf("x" to image))   // line.path: FAST or MAIN
 * ```
 */
class Cascade private constructor(private val native: NativeCascade) : AutoCloseable {
    constructor(fast: Engine, main: Engine, gate: Gate) : this(native {
        when (gate) {
            is Gate.Builtin -> NativeCascade.builtin(fast.native, main.native, gate.confidence, gate.output, gate.threshold, gate.logits)
            is Gate.Custom -> NativeCascade.custom(fast.native, main.native, object : CascadeGate {
                override fun escalate(outputs: List<NativeTensor>): Boolean =
                    gate.escalate(outputs.associate { it.name to Tensor.fromNative(it) })
            })
        }
    })

    /** Runs on the calling thread; prefer [infer] from coroutines. Options as [Engine.inferBlocking]. */
    @Throws(EngineException::class)
    @JvmOverloads
    fun inferBlocking(
        inputs: Map<String, Tensor>,
        priority: Priority = Priority.NORMAL,
        deadline: Duration? = null,
        cancel: CancelToken? = null,
    ): CascadeResult {
        val (specs, data) = Engine.packed(inputs)
        val out = native { native.run(specs, data, CallOptions(priority, Engine.timeoutMicros(deadline), cancel)) }
        return CascadeResult(Engine.outputsOf(out.outputs), out.path, out.confidence)
    }

    /** [inferBlocking] off the caller's thread; cancelling the coroutine stops the run. */
    @Throws(EngineException::class)
    suspend fun infer(
        inputs: Map<String, Tensor>,
        priority: Priority = Priority.NORMAL,
        deadline: Duration? = null,
        dispatcher: CoroutineDispatcher = Dispatchers.Default,
    ): CascadeResult = Engine.cancellable(dispatcher) { token -> inferBlocking(inputs, priority, deadline, token) }

    /** Inputs, escalations and milliseconds on each path since the cascade was made. */
    val counters: CascadeCounters get() = native.counters()

    /**
     * Closes the cascade: later runs throw [EngineException.EngineClosed]. Engines it loaded from a manifest are
     * released now; engines you gave it stay yours to close. Closing twice is fine.
     */
    override fun close() = native.release()

    val isClosed: Boolean get() = native.isClosed()

    companion object {
        /**
         * The cascade a calibrated manifest describes (`cascade.json` from `cargo xtask cascade calibrate`): both
         * models, loaded with [config], and the gate at the threshold chosen on labelled inputs for the target
         * (accuracy within a margin of the main model's, or an escalation budget) at the lowest mean latency.
         */
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun fromManifest(path: String, config: EngineConfig = DefaultEngineConfig): Cascade {
            OpenAutoGLM.checkNativeLibrary()
            return Cascade(native { NativeCascade.fromManifest(path, config) })
        }
    }
}
