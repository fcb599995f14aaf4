package ai.openautoglm

import android.util.Log

/** What differs between the Android build of this layer and the desktop-JVM one (src/jvm/kotlin). */
internal object Platform {
    /** Where log records go unless the app sets a handler: logcat, through `android.util.Log`. */
    val defaultLogHandler: LogHandler? = Logcat
}

/**
 * Writes the SDK's and ONNX Runtime's records to logcat under the tag `OpenAutoGLM` (ONNX Runtime's prefixed with
 * `[onnxruntime]`), as `android.util.Log` does for the app's own: what `adb logcat -s OpenAutoGLM` shows.
 */
internal object Logcat : LogHandler {
    const val TAG = "OpenAutoGLM"

    override fun log(level: LogLevel, target: String, message: String) {
        val priority = when (level) {
            LogLevel.OFF -> return
            LogLevel.ERROR -> Log.ERROR
            LogLevel.WARN -> Log.WARN
            LogLevel.INFO -> Log.INFO
            LogLevel.DEBUG -> Log.DEBUG
            LogLevel.TRACE -> Log.VERBOSE
        }
        Log.println(priority, TAG, if (target.startsWith("openautoglm")) message else "[$target] $message")
    }
}
