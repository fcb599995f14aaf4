package ai.openautoglm

import java.io.File
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.flowOn

/**
 * A decoder LLM (e.g. SmolLM2 from `cargo xtask models prepare smollm2`) that streams its answers.
 *
 * ```
 * Llm.open(modelDir).use { llm ->
 *     llm.chat(listOf(ChatMessage("user", "What is the capital of France?")))
 *         .collect { piece -> textView.append(piece) }           // cancel the collector to stop generating
 * }
 * ```
 * Pieces are valid UTF-8 text (a character split across tokens arrives whole). Failures are [EngineException]s.
 */
/** Called once a generation has ended, with its metrics and why it ended (null if it failed). */
typealias FinishListener = (GenerationMetrics, FinishReason?) -> Unit

class Llm private constructor(private val native: NativeLlm) : AutoCloseable {
    /** The decoder file running, e.g. `int4.onnx` (what `Precision.AUTO` picks where it exists). */
    val file: String = native.file()

    /**
     * Continues [prompt] as is (no chat template). [onFinish] gets the request's metrics (time to first token,
     * tokens/s, per-token percentiles, peak RSS) and why it ended, also when cancelled.
     */
    fun generate(prompt: String, options: GenerateOptions = GenerateOptions(), onFinish: FinishListener? = null): Flow<String> =
        stream(onFinish) { native.generate(prompt, options) }

    /** Answers a chat, laid out by the model's own chat template. */
    fun chat(messages: List<ChatMessage>, options: GenerateOptions = GenerateOptions(), onFinish: FinishListener? = null): Flow<String> =
        stream(onFinish) { native.chat(messages, options) }

    /** A conversation that keeps its turns (the oldest are dropped when the context would overflow). */
    fun newChat(system: String? = null): Chat = Chat(native.newChat(system))

    /** Frees the model now. */
    override fun close() = native.destroy()

    class Chat internal constructor(private val native: NativeChat) {
        val history: List<ChatMessage> get() = native.history()

        /** Sends [user]'s message; the answer streams, and joins the history when it ends. */
        fun send(user: String, options: GenerateOptions = GenerateOptions(), onFinish: FinishListener? = null): Flow<String> =
            stream(onFinish) { native.send(user, options) }
    }

    companion object {
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun open(dir: String, config: EngineConfig = DefaultEngineConfig): Llm {
            OpenAutoGLM.checkNativeLibrary()
            return Llm(NativeLlm.open(dir, config))
        }

        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun open(dir: File, config: EngineConfig = DefaultEngineConfig): Llm = open(dir.path, config)

        /**
         * Pulls pieces on [Dispatchers.IO] (one blocking native call per token) and emits them. When the collector
         * is cancelled, or stops early, the generation is cancelled before its next token.
         */
        internal fun stream(onFinish: FinishListener?, start: () -> NativeGeneration): Flow<String> = flow {
            val generation = start()
            try {
                while (true) {
                    currentCoroutineContext().ensureActive()
                    val piece = generation.nextPiece() ?: break
                    emit(piece)
                }
            } finally {
                generation.cancel()
                onFinish?.invoke(generation.metrics(), generation.finishReason())
                generation.destroy()
            }
        }.flowOn(Dispatchers.IO)
    }
}
