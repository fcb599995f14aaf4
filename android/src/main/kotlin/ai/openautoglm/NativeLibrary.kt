package ai.openautoglm

import java.io.File
import java.nio.file.Files
import java.nio.file.StandardCopyOption

/**
 * Finds the native libraries before the first native call.
 *
 * On Android the system loader finds libopenautoglm_ffi and libonnxruntime in the APK, and nothing happens here.
 * On a desktop JVM the `openautoglm-jvm` jar carries a release build of libopenautoglm_ffi for its OS and CPU and,
 * beside it, the ONNX Runtime its tests run on: both are extracted into one fresh temporary directory, as ONNX
 * Runtime's Java API does with its own, where the engine looks for ONNX Runtime next to itself. (A jar without it
 * falls back to the libonnxruntime inside ONNX Runtime's own Java jar, when the app has that.)
 * A library on the loader path (`-Djna.library.path`, `LD_LIBRARY_PATH`) or named by the
 * `uniffi.component.openautoglm_ffi.libraryOverride` property wins over the jar's.
 */
internal object NativeLibrary {
    private const val COMPONENT = "openautoglm_ffi"
    private const val OVERRIDE = "uniffi.component.$COMPONENT.libraryOverride"

    @Volatile private var prepared = false

    @Synchronized
    fun prepare() {
        if (prepared) return
        prepared = true
        if (isAndroid || System.getProperty(OVERRIDE) != null || onLoaderPath()) return
        val platform = platform() ?: return
        val ours = javaClass.getResource("/ai/openautoglm/native/$platform/${System.mapLibraryName(COMPONENT)}") ?: return
        val dir = Files.createTempDirectory("openautoglm-native").toFile().apply { deleteOnExit() }
        val library = extract(ours, File(dir, System.mapLibraryName(COMPONENT)))
        val runtime = javaClass.getResource("/ai/openautoglm/native/$platform/${System.mapLibraryName("onnxruntime")}")
            ?: ortResource()
        runtime?.let { extract(it, File(dir, System.mapLibraryName("onnxruntime"))) }
        System.setProperty(OVERRIDE, library.absolutePath)
    }

    /** Why the library could not be loaded, as the reason of [EngineException.NativeLibraryUnavailable]. */
    fun describe(error: LinkageError): String {
        val where = System.getProperty(OVERRIDE)?.let { "from `$it`" } ?: "by the name `$COMPONENT`"
        val platform = platform() ?: "${System.getProperty("os.name")} ${System.getProperty("os.arch")}"
        return "loading it $where on $platform failed (${error.message ?: error.javaClass.simpleName})"
    }

    private val isAndroid: Boolean
        get() = System.getProperty("java.vm.vendor").orEmpty().contains("Android", ignoreCase = true) ||
            System.getProperty("java.vm.name") == "Dalvik"

    /** Whether a directory JNA searches first already holds the library (a development build, tests). */
    private fun onLoaderPath(): Boolean {
        val name = System.mapLibraryName(COMPONENT)
        val paths = listOfNotNull(System.getProperty("jna.library.path"), System.getenv("LD_LIBRARY_PATH"))
        return paths.flatMap { it.split(File.pathSeparatorChar) }.any { it.isNotEmpty() && File(it, name).isFile }
    }

    /** `linux-x86-64`, `linux-aarch64`, `darwin-aarch64`, ...: the folder inside the jar, or null if unknown. */
    private fun platform(): String? {
        val os = System.getProperty("os.name").orEmpty().lowercase()
        val osName = when {
            os.startsWith("linux") -> "linux"
            os.startsWith("mac") || os.startsWith("darwin") -> "darwin"
            os.startsWith("windows") -> "windows"
            else -> return null
        }
        return "$osName-${arch() ?: return null}"
    }

    private fun arch(): String? = when (System.getProperty("os.arch").orEmpty().lowercase()) {
        "amd64", "x86_64" -> "x86-64"
        "aarch64", "arm64" -> "aarch64"
        else -> null
    }

    /** libonnxruntime inside ONNX Runtime's Java jar (`ai/onnxruntime/native/linux-x64/...`), if it is there. */
    private fun ortResource(): java.net.URL? {
        val os = when (platform()?.substringBefore('-')) {
            "linux" -> "linux"
            "darwin" -> "osx"
            "windows" -> "win"
            else -> return null
        }
        val arch = if (arch() == "x86-64") "x64" else "aarch64"
        return javaClass.getResource("/ai/onnxruntime/native/$os-$arch/${System.mapLibraryName("onnxruntime")}")
    }

    private fun extract(resource: java.net.URL, target: File): File {
        resource.openStream().use { Files.copy(it, target.toPath(), StandardCopyOption.REPLACE_EXISTING) }
        target.deleteOnExit()
        return target
    }
}
