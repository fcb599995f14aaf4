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
        return initRuntime(libraryPath)
    }

    /**
     * What the SDK and ONNX Runtime log to logcat from now on (default [LogLevel.WARN]). ONNX Runtime's report of a
     * failed inference, which the caller receives as an [EngineException], is logged at [LogLevel.DEBUG].
     */
    @JvmStatic var logLevel: LogLevel
        get() = ai.openautoglm.logLevel()
        set(value) = ai.openautoglm.setLogLevel(value)

    /** Fails loudly when the native library is not the one these bindings were generated from. */
    @JvmStatic
    fun checkNativeLibrary() {
        if (checked) return
        val native = nativeVersion()
        check(native == VERSION) {
            "libopenautoglm_ffi is version $native but the Kotlin bindings are $VERSION: package matching versions"
        }
        checked = true
    }
}
