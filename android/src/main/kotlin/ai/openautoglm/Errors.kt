package ai.openautoglm

/**
 * Every failure of the SDK. Each subclass keeps the fields a caller acts on (the input's [InvalidInput.name], the
 * model's [ModelNotFound.path], ...) and its [message] reads as a sentence that says what to do.
 *
 * The native library reports its errors as the generated `NativeException`; [native] turns them into these in one
 * place, so an app only ever sees this hierarchy.
 */
sealed class EngineException(message: String) : Exception(message) {
    /** ONNX Runtime could not be loaded from [path]; [reason] says what is needed. */
    class RuntimeUnavailable(val path: String, val reason: String) : EngineException(
        "ONNX Runtime is unavailable (tried `$path`): $reason. In Kotlin, call OpenAutoGLM.loadRuntime(path) before " +
            "the first engine; the openautoglm-jvm jar (desktop JVM) and onnxruntime-android (Android) bring it.",
    )

    /**
     * The loaded ONNX Runtime is older than [feature] needs: [required] is the oldest release with it, [loaded] the
     * one in this process.
     */
    class RuntimeTooOld(val feature: String, val required: String, val loaded: String) : EngineException(
        "$feature needs ONNX Runtime >= $required, but the one loaded is $loaded. Use the runtime this SDK is " +
            "tested with: the openautoglm-jvm jar carries it, and the Android module depends on its version.",
    )

    /**
     * This SDK's own native library (libopenautoglm_ffi) could not be loaded: not on this platform's path, not
     * inside the jar for this OS and CPU, or built for another version.
     */
    class NativeLibraryUnavailable(val reason: String) : EngineException(
        "the Open-AutoGLM native library could not be loaded: $reason. On Android depend on the openautoglm AAR; " +
            "on a desktop JVM depend on ai.openautoglm:openautoglm-jvm (it carries the library for linux-x86-64), " +
            "or put libopenautoglm_ffi on the library path (-Djna.library.path=DIR).",
    )

    class ModelNotFound(val path: String) : EngineException("model not found or not readable: `$path`")
    class InvalidModel(val reason: String) : EngineException("invalid model: $reason")
    class InvalidInput(val name: String, val reason: String) : EngineException("invalid input `$name`: $reason")
    class InvalidConfig(val reason: String) : EngineException("invalid configuration: $reason")

    /**
     * An accelerator's plugin library is missing, is not a plugin for the loaded ONNX Runtime (>= 1.22), or does not
     * register [provider]. (A plugin whose hardware is absent is skipped instead, or refused with [InvalidConfig] in
     * strict mode.)
     */
    class AcceleratorUnavailable(val provider: String, val reason: String) : EngineException(
        "accelerator $provider is unavailable: $reason. On Android, depend on the plugin's AAR (its libraries land " +
            "in the app's native library directory, found by file name) or pass the library's full path.",
    )
    /** The model store could not fetch [name] after its retries; what was fetched stays resumable. */
    class DownloadFailed(val name: String, val reason: String) : EngineException("could not download `$name`: $reason")

    /** The bytes fetched for [name] are not the model its entry describes; they were removed, nothing installed. */
    class IntegrityFailed(val name: String, val reason: String) :
        EngineException("`$name` failed its integrity check: $reason")
    class InferenceFailed(val reason: String) : EngineException("inference failed: $reason")
    class MemoryLimit(val reason: String) : EngineException("memory limit: $reason")
    class Cancelled : EngineException("the request was cancelled before it finished")
    class DeadlineExceeded : EngineException("the request's deadline passed before it finished; nothing late is delivered")
    class ChatBusy(val reason: String) : EngineException("the chat is busy: $reason")
    class EngineClosed : EngineException("the engine is closed; create a new one")
    class Internal(val reason: String) : EngineException("internal error (please report it): $reason")

    internal companion object {
        fun of(e: NativeException): EngineException = when (e) {
            is NativeException.RuntimeUnavailable -> RuntimeUnavailable(e.path, e.reason)
            is NativeException.RuntimeTooOld -> RuntimeTooOld(e.feature, e.required, e.loaded)
            is NativeException.NativeLibraryUnavailable -> NativeLibraryUnavailable(e.reason)
            is NativeException.ModelNotFound -> ModelNotFound(e.path)
            is NativeException.InvalidModel -> InvalidModel(e.reason)
            is NativeException.InvalidInput -> InvalidInput(e.name, e.reason)
            is NativeException.InvalidConfig -> InvalidConfig(e.reason)
            is NativeException.AcceleratorUnavailable -> AcceleratorUnavailable(e.provider, e.reason)
            is NativeException.DownloadFailed -> DownloadFailed(e.name, e.reason)
            is NativeException.IntegrityFailed -> IntegrityFailed(e.name, e.reason)
            is NativeException.InferenceFailed -> InferenceFailed(e.reason)
            is NativeException.MemoryLimit -> MemoryLimit(e.reason)
            is NativeException.Cancelled -> Cancelled()
            is NativeException.DeadlineExceeded -> DeadlineExceeded()
            is NativeException.ChatBusy -> ChatBusy(e.reason)
            is NativeException.EngineClosed -> EngineClosed()
            is NativeException.Internal -> Internal(e.reason)
        }.also { it.stackTrace = e.stackTrace }
    }
}

/** Runs a call into the native library, turning its errors into [EngineException]s: the one place that does. */
internal inline fun <T> native(call: () -> T): T =
    try {
        call()
    } catch (e: NativeException) {
        throw EngineException.of(e)
    }
