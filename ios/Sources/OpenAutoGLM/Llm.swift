import Foundation

/// A decoder LLM (e.g. SmolLM2 from `cargo xtask models prepare smollm2`) that streams its answers.
///
/// ```swift
/// let llm = try Llm(directory: modelDir)
/// for try await piece in llm.chat([ChatMessage(role: "user", content: "What is the capital of France?")]) {
///     label.text += piece                                  // cancelling the task stops generating
/// }
/// ```
/// Pieces are valid UTF-8 text (a character split across tokens arrives whole). Failures are `EngineError`s.
/// Several generations on one LLM run at once: their steps interleave by `Priority`, and a long prompt is prefilled
/// in short chunks while others stream.
public final class Llm: Sendable {
    private let native: NativeLlm
    /// The decoder file running, e.g. `int4-mixed.onnx`.
    public let file: String
    /// Which decoder runs and why. `.auto` picks, among the decoders that passed their quality check against FP32
    /// (perplexity, greedy agreement, a multi-turn chat without loops), the fastest measured on this device class,
    /// else the smallest; never one that failed.
    public let precision: PrecisionChoice

    /// The draft decoder's file when one is attached (`withDraft`), else nil (prompt lookup drafts).
    public let draftFile: String?

    public convenience init(directory: String, config: EngineConfig = .default) throws {
        try Runtime.checkNativeLibrary()
        try self.init(native: NativeLlm.open(dir: directory, config: config))
    }

    private init(native: NativeLlm) throws {
        self.native = native
        file = try native.file()
        precision = try native.precision()
        draftFile = try native.draftFile()
    }

    /// This LLM with `draft` (a cheaper decoder with the same tokenizer, e.g. a 4-bit variant) proposing tokens for
    /// speculative decoding, on by default in its requests (`maxDraftTokens: 0` drafts up to 8 tokens a pass; another
    /// k caps it there). The answer stays this model's own: greedy token for token, sampled in distribution. Without
    /// a draft, prompt lookup drafts in requests that set `GenerateOptions(maxDraftTokens: k)`.
    public func withDraft(_ draft: Llm) throws -> Llm {
        try Llm(native: native.withDraft(draft: draft.native))
    }

    /// Frees the model now (a generation already running finishes first). Later calls, on this LLM and on its
    /// chats, throw `EngineError.EngineClosed`; closing twice is fine.
    public func close() { native.release() }

    public var isClosed: Bool { native.isClosed() }

    /// Bytes of KV cache its chats keep between turns (see `Chat.cacheBytes`).
    public var cacheBytes: Int64 { native.cacheBytes() }

    /// The most bytes of KV cache its chats keep between turns (default 128 MB): past it, the least recently used
    /// chats give theirs back and run their whole history again on their next message.
    public var idleCacheLimitBytes: Int64 {
        get { native.idleCacheLimitBytes() }
        set { native.setIdleCacheLimitBytes(bytes: newValue) }
    }

    /// Continues `prompt` as is (no chat template). `onFinish` gets the request's metrics and why it ended.
    public func generate(_ prompt: String, options: GenerateOptions = GenerateOptions(), priority: Priority = .normal,
                         onFinish: (@Sendable (GenerationMetrics, FinishReason?) -> Void)? = nil) -> AsyncThrowingStream<String, Error> {
        Llm.stream(priority, onFinish) { [native] in try native.generate(prompt: prompt, options: options) }
    }

    /// Answers a chat, laid out by the model's own chat template.
    public func chat(_ messages: [ChatMessage], options: GenerateOptions = GenerateOptions(), priority: Priority = .normal,
                     onFinish: (@Sendable (GenerationMetrics, FinishReason?) -> Void)? = nil) -> AsyncThrowingStream<String, Error> {
        Llm.stream(priority, onFinish) { [native] in try native.chat(messages: messages, options: options) }
    }

    /// A conversation that keeps its turns. When the context would overflow, `policy` decides: drop whole exchanges
    /// (a message and its answer) oldest first, keeping the system message, or refuse the new message. A refused
    /// message, or an answer that failed, leaves the history as it was; an exchange joins it when its answer ends
    /// (a cancelled answer too, as far as it got).
    public func newChat(system: String? = nil, policy: HistoryPolicy = .dropOldestExchanges) throws -> Chat {
        Chat(try native.newChat(system: system, policy: policy))
    }

    /// The tokens of `text` (no template applied): to count what a prompt takes of the context.
    public func encode(_ text: String) throws -> [Int] { try native.encode(text: text).map { Int($0) } }

    /// The text of `tokens`, as a generation's answer holds it.
    public func decode(_ tokens: [Int]) throws -> String { try native.decode(tokens: tokens.map { Int32(clamping: $0) }) }

    public final class Chat: Sendable {
        private let native: NativeChat
        init(_ native: NativeChat) { self.native = native }

        public var history: [ChatMessage] { get throws { try native.history() } }

        /// Bytes of KV cache the chat keeps between turns, so that the next message runs only what is new (its
        /// answer's closing, the message and the assistant header), not the whole conversation again.
        public var cacheBytes: Int64 { native.cacheBytes() }

        /// Gives back the KV cache kept between turns (for example when the app goes to the background).
        public func releaseCache() { native.releaseCache() }

        /// Sends `user`'s message; the answer streams, and joins the history when it ends. One message at a time: a
        /// message sent while the previous answer still streams throws `EngineError.ChatBusy`.
        public func send(_ user: String, options: GenerateOptions = GenerateOptions(), priority: Priority = .normal,
                         onFinish: (@Sendable (GenerationMetrics, FinishReason?) -> Void)? = nil) -> AsyncThrowingStream<String, Error> {
            Llm.stream(priority, onFinish) { [native] in try native.send(user: user, options: options) }
        }
    }

    /// Pulls pieces on the SDK's native queue (one blocking native call per token, kept off Swift's cooperative
    /// thread pool). Cancelling the consuming task, or dropping the stream, cancels the generation before its next
    /// token.
    static func stream(_ priority: Priority, _ onFinish: (@Sendable (GenerationMetrics, FinishReason?) -> Void)?,
                       _ start: @escaping @Sendable () throws -> NativeGeneration) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let state = StreamState()
            continuation.onTermination = { _ in state.cancel() }
            NativeWork.start(priority: Task.currentPriority) {
                var generation: NativeGeneration?
                do {
                    let started = try start()
                    started.setPriority(priority: priority)
                    generation = started
                    state.started(started)
                    while !state.isCancelled, let piece = try started.nextPiece() {
                        continuation.yield(piece)
                    }
                    started.cancel()
                    onFinish?(started.metrics(), started.finishReason())
                    continuation.finish()
                } catch {
                    generation?.cancel()
                    if let generation { onFinish?(generation.metrics(), generation.finishReason()) }
                    continuation.finish(throwing: error)
                }
            }
        }
    }
}

/// A stream's cancellation, shared between its consumer (which may stop at any time) and the token loop.
private final class StreamState: @unchecked Sendable {
    private let lock = NSLock()
    private var generation: NativeGeneration?
    private var cancelled = false

    var isCancelled: Bool { lock.withLock { cancelled } }

    func started(_ generation: NativeGeneration) {
        let cancelNow = lock.withLock { () -> Bool in
            self.generation = generation
            return cancelled
        }
        if cancelNow { generation.cancel() }
    }

    func cancel() {
        let generation = lock.withLock { () -> NativeGeneration? in
            cancelled = true
            return self.generation
        }
        generation?.cancel()
    }
}
