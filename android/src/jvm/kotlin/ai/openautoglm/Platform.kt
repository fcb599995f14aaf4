package ai.openautoglm

/** What differs between the desktop-JVM build of this layer and the Android one (src/android/kotlin). */
internal object Platform {
    /** Where log records go unless the app sets a handler: null keeps the native library's own sink (stderr). */
    val defaultLogHandler: LogHandler? = null
}
