package ai.openautoglm

/** Process-wide setup: the ONNX Runtime library and the native-library version handshake. */
object OpenAutoGLM {
    /** The version these bindings were generated for. */
    const val VERSION: String = BINDINGS_VERSION

    @Volatile private var checked = false

    /**
     * Loads ONNX Runtime from [libraryPath], or from `ORT_DYLIB_PATH` / the platform library (`libonnxruntime.so`
     * from the onnxruntime-android AAR) when null. Optional: the first engine loads the default.
     */
    @JvmStatic @JvmOverloads @Throws(EngineException::class)
    fun loadRuntime(libraryPath: String? = null): RuntimeInfo {
        checkNativeLibrary()
        return native { initRuntime(libraryPath) }
    }

    /**
     * Whether ONNX Runtime may send its usage telemetry to Microsoft. Off unless the app turns it on, which works only
     * before the runtime loads (before [loadRuntime] or the first engine); turning it on later throws
     * [EngineException.InvalidConfig]. Off, ONNX Runtime's telemetry client never starts: nothing is recorded,
     * stored or sent.
     */
    @JvmStatic @Throws(EngineException::class)
    fun setTelemetry(enabled: Boolean) {
        checkNativeLibrary()
        native { ai.openautoglm.setTelemetry(enabled) }
    }

    /** Whether ONNX Runtime's telemetry is on (false unless [setTelemetry] turned it on). */
    @JvmStatic val telemetryEnabled: Boolean
        get() {
            checkNativeLibrary()
            return ai.openautoglm.telemetryEnabled()
        }

    /**
     * The device class measurements are recorded under when [accelerator] leads (e.g. `android-aarch64-nnapi`):
     * `Precision.AUTO` runs the fastest bundle variant measured on it among those that passed their accuracy check.
     */
    @JvmStatic @JvmOverloads
    fun deviceClass(accelerator: Accelerator = Accelerator.Cpu): String {
        checkNativeLibrary()
        return ai.openautoglm.deviceClass(accelerator)
    }

    /**
     * The numerics class whose accuracy verdicts hold when [accelerator] leads (`linux-aarch64-cpu` on every ARM64
     * phone): a bundle variant runs, whether `Precision.AUTO` picks it or the app asks for its precision, only where it
     * passed its accuracy check on this class. Asking for one that did not throws [EngineException.InvalidConfig].
     */
    @JvmStatic @JvmOverloads
    fun numericsClass(accelerator: Accelerator = Accelerator.Cpu): String {
        checkNativeLibrary()
        return ai.openautoglm.numericsClass(accelerator)
    }

    /**
     * What the SDK and ONNX Runtime log to logcat from now on (default [LogLevel.WARN]). ONNX Runtime's report of a
     * failed inference, which the caller receives as an [EngineException], is logged at [LogLevel.DEBUG].
     */
    @JvmStatic var logLevel: LogLevel
        get() {
            checkNativeLibrary()
            return ai.openautoglm.logLevel()
        }
        set(value) {
            checkNativeLibrary()
            ai.openautoglm.setLogLevel(value)
        }

    /**
     * Sends the SDK's and ONNX Runtime's log records at or above [logLevel] to [handler] (e.g. the app's own logging)
     * from now on, or back to the platform's sink with null: logcat under the tag `OpenAutoGLM` on Android, stderr
     * on a desktop JVM. The handler runs on the thread that logs (often an inference thread): keep it quick.
     */
    @JvmStatic @Throws(EngineException::class)
    fun setLogHandler(handler: ((level: LogLevel, target: String, message: String) -> Unit)?) {
        checkNativeLibrary()
        val native = handler?.let {
            object : LogHandler {
                override fun log(level: LogLevel, target: String, message: String) {
                    // A handler that throws loses its record; the call that logged carries on.
                    runCatching { it(level, target, message) }
                }
            }
        }
        native { ai.openautoglm.setLogHandler(native ?: Platform.defaultLogHandler) }
    }

    /**
     * Loads the native library (on a desktop JVM, from the jar when it is not on the loader path) and checks that it
     * is the one these bindings were generated from. Every engine and LLM calls it first; a failure is
     * [EngineException.NativeLibraryUnavailable] saying what to add.
     */
    @JvmStatic @Throws(EngineException::class)
    fun checkNativeLibrary() {
        if (checked) return
        NativeLibrary.prepare()
        val native = try {
            nativeVersion()
        } catch (e: LinkageError) {
            // JNA's UnsatisfiedLinkError, or NoClassDefFoundError when JNA itself is missing.
            throw EngineException.NativeLibraryUnavailable(NativeLibrary.describe(e)).apply { initCause(e) }
        }
        versionMismatch(native)?.let { throw it }
        // On Android records go to logcat through android.util.Log, where the app's tooling (and tests) see them.
        Platform.defaultLogHandler?.let { native { ai.openautoglm.setLogHandler(it) } }
        checked = true
    }

    /** The error for a native library of another version than this layer's, or null when they match. */
    internal fun versionMismatch(native: String, layer: String = VERSION): EngineException.NativeLibraryUnavailable? =
        if (native == layer) {
            null
        } else {
            EngineException.NativeLibraryUnavailable(
                "libopenautoglm_ffi is version $native but the Kotlin layer is $layer; use the same version of both",
            )
        }
}
