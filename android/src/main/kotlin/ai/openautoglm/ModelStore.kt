package ai.openautoglm

import java.io.File
import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URI
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.channelFlow

/**
 * Models delivered to the device: [ensure] returns a model that is complete and verified, downloading it only when
 * needed, through the platform's HTTP stack ([UrlConnectionTransport] by default: `HttpURLConnection`, so Android's
 * network security config, proxies and certificate pinning apply).
 *
 * ```
 * val store = ModelStore(File(context.filesDir, "models"), budgetBytes = 200L shl 20)
 * val manifest = store.fetchManifest("https://cdn.example.com/models.json", "https://cdn.example.com/models.json.sig", APP_PUBLIC_KEY)
 * store.download(manifest.models.first { it.name == "silero-vad.onnx" }).collect { event ->
 *     when (event) {
 *         is Download.Progress -> progressBar.progress = (100 * event.bytes / event.total).toInt()
 *         is Download.Done -> engine = event.model.load()
 *     }
 * }
 * ```
 *
 * What it guarantees: nothing unverified is ever under a model's name (sha256 checked as bytes arrive, then an atomic
 * rename; a manifest is trusted only when its Ed25519 signature verifies with the app's key); a download stopped by a
 * cancel, a lost connection or a killed process leaves one resumable file and continues with a range request; a new
 * version installs beside the old one, which is removed once no engine holds it; [budgetBytes] evicts the least
 * recently used models no engine holds. Failures are [EngineException.DownloadFailed],
 * [EngineException.IntegrityFailed], [EngineException.InvalidConfig] (an entry refused before any byte is fetched)
 * and [EngineException.Cancelled].
 */
class ModelStore @JvmOverloads constructor(
    root: File,
    budgetBytes: Long? = null,
    maxModelBytes: Long? = null,
    transport: HttpTransport = UrlConnectionTransport(),
    attempts: Int? = null,
    backoffMs: Long? = null,
) : AutoCloseable {
    private val native: NativeModelStore

    init {
        OpenAutoGLM.checkNativeLibrary()
        native = native { NativeModelStore(root.path, transport, maxModelBytes, budgetBytes, attempts, backoffMs) }
    }

    /** [entry], complete and verified; [onProgress] gets (bytes, total). Cancelling the coroutine stops the download. */
    suspend fun ensure(
        entry: ModelEntry,
        dispatcher: CoroutineDispatcher = Dispatchers.IO,
        onProgress: ((Long, Long) -> Unit)? = null,
    ): InstalledModel = Engine.cancellable(dispatcher) { token ->
        InstalledModel(native { native.ensure(entry, onProgress?.let(::listener), token) })
    }

    /** [ensure] as a flow: [Download.Progress] while bytes arrive, then [Download.Done]. */
    fun download(entry: ModelEntry, dispatcher: CoroutineDispatcher = Dispatchers.IO): Flow<Download> = channelFlow {
        val model = Engine.cancellable(dispatcher) { token ->
            native { native.ensure(entry, listener { bytes, total -> trySend(Download.Progress(bytes, total)) }, token) }
        }
        send(Download.Done(InstalledModel(model)))
    }

    /**
     * A precision bundle whose `bundle.json` is [entry], with only the variant an engine with [config] runs on this
     * device: a phone does not fetch FP16 and INT8 both. [InstalledModel.load] loads it with `Engine.fromBundle`.
     */
    suspend fun ensureBundle(
        entry: ModelEntry,
        config: EngineConfig = DefaultEngineConfig,
        dispatcher: CoroutineDispatcher = Dispatchers.IO,
        onProgress: ((Long, Long) -> Unit)? = null,
    ): InstalledModel = Engine.cancellable(dispatcher) { token ->
        InstalledModel(native { native.ensureBundle(entry, config, onProgress?.let(::listener), token) })
    }

    /**
     * An encrypted model: [entry] is the sealed file, [decrypt] the app's cipher (its key from the Android Keystore is
     * the app's business). The plain model is loaded from memory and never written to disk; a [decrypt] that throws is
     * [EngineException.IntegrityFailed]. [EngineConfig.cacheDir] must be null (the compile cache writes the model).
     */
    suspend fun openEncrypted(
        entry: ModelEntry,
        config: EngineConfig = DefaultEngineConfig,
        dispatcher: CoroutineDispatcher = Dispatchers.IO,
        decrypt: (ByteArray) -> ByteArray,
    ): Engine = Engine.cancellable(dispatcher) { token ->
        val decryptor = object : ModelDecryptor {
            override fun decrypt(sealed: ByteArray): ByteArray =
                try { decrypt(sealed) } catch (e: Exception) { throw CallbackException.Failed(e.toString()) }
        }
        Engine(native { native.openEncrypted(entry, decryptor, config, null, token) })
    }

    /** The manifest at [url], trusted only if its Ed25519 signature at [signatureUrl] verifies with [publicKey]. */
    suspend fun fetchManifest(
        url: String,
        signatureUrl: String,
        publicKey: ByteArray,
        dispatcher: CoroutineDispatcher = Dispatchers.IO,
    ): Manifest = Engine.cancellable(dispatcher) { native { native.fetchManifest(url, signatureUrl, publicKey) } }

    /** Every version stored, least recently used first. */
    fun stored(): List<StoredModel> = native.stored()

    /** Removes the least recently used versions no engine holds until the store is at most [budgetBytes]. */
    fun evict(budgetBytes: Long): List<StoredModel> = native { native.evict(budgetBytes) }

    override fun close() = native.close()

    companion object {
        /** Verifies [signature] (Ed25519, 64 bytes) over [json] with [publicKey] (32 bytes) and reads the manifest. */
        @JvmStatic @Throws(EngineException::class)
        fun verifyManifest(json: ByteArray, signature: ByteArray, publicKey: ByteArray): Manifest {
            OpenAutoGLM.checkNativeLibrary()
            return native { ai.openautoglm.verifyManifest(json, signature, publicKey) }
        }

        private fun listener(onProgress: (Long, Long) -> Unit) = object : DownloadListener {
            override fun progress(bytes: Long, total: Long) = onProgress(bytes, total)
        }
    }
}

/** What [ModelStore.download] emits. */
sealed interface Download {
    data class Progress(val bytes: Long, val total: Long) : Download
    class Done(val model: InstalledModel) : Download
}

/**
 * An installed model (or bundle folder). While it is open, or an engine loaded from it is, its version is not
 * removed (by an update or the budget); close it when not loading it.
 */
class InstalledModel internal constructor(private val native: NativeInstalled) : AutoCloseable {
    /** The model file, or the bundle's folder. */
    val path: File = File(native.path())

    /** Loads it (`Engine.fromFile`, or `fromBundle` for a bundle); the engine holds the version until closed. */
    @JvmOverloads @Throws(EngineException::class)
    fun load(config: EngineConfig = DefaultEngineConfig): Engine = Engine(native { native.load(config) })

    override fun close() {
        native.release()
        native.close()
    }
}

/**
 * The store's HTTP through `HttpURLConnection` (Android's and the JDK's): redirects are not followed here, the store
 * follows them itself only to HTTPS (or this machine).
 */
class UrlConnectionTransport @JvmOverloads constructor(
    private val connectTimeoutMs: Int = 15_000,
    private val readTimeoutMs: Int = 30_000,
) : HttpTransport {
    override fun get(url: String, from: Long): HttpResponse {
        try {
            val connection = URI(url).toURL().openConnection() as HttpURLConnection
            connection.instanceFollowRedirects = false
            connection.connectTimeout = connectTimeoutMs
            connection.readTimeout = readTimeoutMs
            if (from > 0) connection.setRequestProperty("Range", "bytes=$from-")
            return Response(connection, connection.responseCode)
        } catch (e: Exception) {
            throw CallbackException.Failed(e.toString())
        }
    }

    private class Response(private val connection: HttpURLConnection, private val status: Int) : HttpResponse {
        private val body: InputStream? by lazy {
            if (status >= 400) connection.errorStream else connection.inputStream
        }

        override fun status(): Int = status
        override fun header(name: String): String? = connection.getHeaderField(name)

        override fun read(max: Int): ByteArray {
            val stream = body ?: return ByteArray(0)
            val buffer = ByteArray(max)
            val n = try { stream.read(buffer) } catch (e: IOException) { throw CallbackException.Failed(e.toString()) }
            return if (n <= 0) ByteArray(0) else buffer.copyOf(n)
        }

        override fun finish() {
            try { body?.close() } catch (_: IOException) {}
            connection.disconnect()
        }
    }
}
