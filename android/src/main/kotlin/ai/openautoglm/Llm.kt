package ai.openautoglm

import java.io.File
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.flowOn

/** Called once a generation has ended, with its metrics and why it ended (null if it failed). */
typealias FinishListener = (GenerationMetrics, FinishReason?) -> Unit

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
 * Several generations on one LLM run at once: their steps interleave by [Priority], and a long prompt is prefilled
 * in short chunks while others stream.
 * Each generation pulls its tokens on [Dispatchers.Default] unless given another dispatcher (one blocking native
 * call per token, CPU work like [Engine.infer]'s, which defaults to the same).
 */
class Llm private constructor(private val native: NativeLlm) : AutoCloseable {
    /** The decoder file running, e.g. `int4-mixed.onnx`. */
    val file: String = native { native.file() }

    /**
     * Which decoder runs and why. `Precision.AUTO` picks, among the decoders that passed their quality check against
     * FP32 (perplexity, greedy agreement, a multi-turn chat without loops), the fastest measured on this device
     * class, else the smallest; never one that failed.
     */
    val precision: PrecisionChoice = native { native.precision() }

    /** The draft decoder's file when one is attached ([withDraft]), else null (prompt lookup drafts). */
    val draftFile: String? = native { native.draftFile() }

    /**
     * This LLM with [draft] (a cheaper decoder with the same tokenizer, e.g. a 4-bit variant) proposing tokens for
     * speculative decoding, on by default in its requests (`maxDraftTokens = 0` drafts up to 8 tokens a pass; another
     * k caps it there). The answer stays this model's own: greedy token for token, sampled in distribution. Without
     * a draft, prompt lookup drafts in requests that set `GenerateOptions(maxDraftTokens = k)`. Close
     * the returned LLM like any other; [draft] stays open while it is used.
     */
    @Throws(EngineException::class)
    fun withDraft(draft: Llm): Llm = Llm(native { native.withDraft(draft.native) })

    /**
     * Continues [prompt] as is (no chat template). [onFinish] gets the request's metrics (time to first token,
     * tokens/s, per-token percentiles, the request's RSS rise and the process's peak) and why it ended, also when
     * cancelled. `maxTokens = 0` is refused ([EngineException.InvalidConfig]).
     */
    fun generate(
        prompt: String,
        options: GenerateOptions = GenerateOptions(),
        priority: Priority = Priority.NORMAL,
        dispatcher: CoroutineDispatcher = Dispatchers.Default,
        onFinish: FinishListener? = null,
    ): Flow<String> = stream(priority, dispatcher, onFinish) { native.generate(prompt, options) }

    /** Answers a chat, laid out by the model's own chat template. */
    fun chat(
        messages: List<ChatMessage>,
        options: GenerateOptions = GenerateOptions(),
        priority: Priority = Priority.NORMAL,
        dispatcher: CoroutineDispatcher = Dispatchers.Default,
        onFinish: FinishListener? = null,
    ): Flow<String> = stream(priority, dispatcher, onFinish) { native.chat(messages, options) }

    /**
     * A conversation that keeps its turns. When the context would overflow, [policy] decides: drop whole exchanges
     * (a message and its answer) oldest first, keeping the system message, or refuse the new message. A refused
     * message, or an answer that failed, leaves the history as it was; an exchange joins it when its answer ends
     * (a cancelled answer too, as far as it got).
     */
    @Throws(EngineException::class)
    fun newChat(system: String? = null, policy: HistoryPolicy = HistoryPolicy.DROP_OLDEST_EXCHANGES): Chat =
        Chat(native { native.newChat(system, policy) })

    /** The tokens of [text] (no template applied): to count what a prompt takes of the context. */
    @Throws(EngineException::class)
    fun encode(text: String): List<Int> = native { native.encode(text) }

    /** The text of [tokens], as a generation's answer holds it. */
    @Throws(EngineException::class)
    fun decode(tokens: List<Int>): String = native { native.decode(tokens) }

    /** True once [close]d. */
    val isClosed: Boolean get() = native.isClosed()

    /** Bytes of KV cache its chats keep between turns (see [Chat.cacheBytes]). */
    val cacheBytes: Long get() = native.cacheBytes()

    /**
     * The most bytes of KV cache its chats keep between turns (default 128 MB): past it, the least recently used
     * chats give theirs back and run their whole history again on their next message.
     */
    var idleCacheLimitBytes: Long
        get() = native.idleCacheLimitBytes()
        set(value) = native.setIdleCacheLimitBytes(value)

    /**
     * Frees the model now (a generation already running finishes first). Later calls, on this LLM and on its chats,
     * throw [EngineException.EngineClosed]; closing twice is fine.
     */
    override fun close() {
        // As Engine.close: the model goes now; the small native handle stays valid so later calls get EngineClosed
        // rather than a destroyed-object error, and uniffi's cleaner frees it with this object.
        native.release()
    }

    class Chat internal constructor(private val native: NativeChat) {
        val history: List<ChatMessage> @Throws(EngineException::class) get() = native { native.history() }

        /**
         * Bytes of KV cache the chat keeps between turns, so that the next message runs only what is new (its
         * answer's closing, the message and the assistant header), not the whole conversation again.
         */
        val cacheBytes: Long get() = native.cacheBytes()

        /** Gives back the KV cache kept between turns (for example when the app goes to the background). */
        fun releaseCache() = native.releaseCache()

        /**
         * Sends [user]'s message; the answer streams, and joins the history when it ends. One message at a time: a
         * message sent while the previous answer still streams throws [EngineException.ChatBusy] when collected.
         */
        fun send(
            user: String,
            options: GenerateOptions = GenerateOptions(),
            priority: Priority = Priority.NORMAL,
            dispatcher: CoroutineDispatcher = Dispatchers.Default,
            onFinish: FinishListener? = null,
        ): Flow<String> = stream(priority, dispatcher, onFinish) { native.send(user, options) }
    }

    companion object {
        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun open(dir: String, config: EngineConfig = DefaultEngineConfig): Llm {
            OpenAutoGLM.checkNativeLibrary()
            return Llm(native { NativeLlm.open(dir, config) })
        }

        @JvmStatic @JvmOverloads @Throws(EngineException::class)
        fun open(dir: File, config: EngineConfig = DefaultEngineConfig): Llm = open(dir.path, config)

        /**
         * Pulls pieces on [dispatcher] (one blocking native call per token) and emits them. When the collector is
         * cancelled, or stops early, the generation is cancelled before its next token.
         */
        internal fun stream(
            priority: Priority,
            dispatcher: CoroutineDispatcher,
            onFinish: FinishListener?,
            start: () -> NativeGeneration,
        ): Flow<String> = flow {
            val generation = native(start)
            generation.setPriority(priority)
            try {
                while (true) {
                    currentCoroutineContext().ensureActive()
                    val piece = native { generation.nextPiece() } ?: break
                    emit(piece)
                }
            } finally {
                generation.cancel()
                onFinish?.invoke(generation.metrics(), generation.finishReason())
                generation.destroy()
            }
        }.flowOn(dispatcher)
    }
}
