package ai.openautoglm

import com.sun.net.httpserver.HttpServer
import java.io.File
import java.net.InetSocketAddress
import java.nio.file.Files
import java.security.KeyPairGenerator
import java.security.MessageDigest
import java.security.SecureRandom
import java.security.Signature
import java.util.concurrent.atomic.AtomicLong
import javax.crypto.Cipher
import javax.crypto.spec.GCMParameterSpec
import javax.crypto.spec.SecretKeySpec
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertTrue
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.json.JSONArray
import org.json.JSONObject

/**
 * The model store from Kotlin, through its default transport (HttpURLConnection) against the JDK's own HTTP server on
 * loopback, serving real models with range support: progress as a Flow, cancel with the coroutine, signed manifests
 * (JDK Ed25519), an update beside an open engine, a bundle's one variant, an AES-GCM sealed model.
 */
class ModelStoreTest {
    private val files = HashMap<String, ByteArray>()
    private val served = AtomicLong()
    @Volatile private var delayPerPieceMs = 0L
    private val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0).apply {
        createContext("/") { exchange ->
            val data = files[exchange.requestURI.path.removePrefix("/")]
            if (data == null) {
                exchange.sendResponseHeaders(404, -1)
                exchange.close()
                return@createContext
            }
            val from = exchange.requestHeaders.getFirst("Range")?.removePrefix("bytes=")?.removeSuffix("-")?.toIntOrNull() ?: 0
            if (from > 0) {
                exchange.responseHeaders.add("Content-Range", "bytes $from-${data.size - 1}/${data.size}")
            }
            exchange.sendResponseHeaders(if (from > 0) 206 else 200, (data.size - from).toLong())
            try {
                exchange.responseBody.use { out ->
                    var at = from
                    while (at < data.size) {
                        val n = minOf(64 shl 10, data.size - at)
                        if (delayPerPieceMs > 0) Thread.sleep(delayPerPieceMs)
                        out.write(data, at, n)
                        served.addAndGet(n.toLong())
                        at += n
                    }
                }
            } catch (_: java.io.IOException) {
                // The client went away (a cancelled download).
            }
        }
        executor = java.util.concurrent.Executors.newCachedThreadPool()
        start()
    }
    private val base = "http://127.0.0.1:${server.address.port}"
    private val root: File = Files.createTempDirectory("store").toFile()

    @AfterTest fun stop() {
        server.stop(0)
        (server.executor as java.util.concurrent.ExecutorService).shutdownNow()
        root.deleteRecursively()
    }

    private fun sha256(bytes: ByteArray) = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    private fun serve(path: String, data: ByteArray, name: String = path, version: String = "1"): ModelEntry {
        files[path] = data
        return ModelEntry(name, version, listOf("$base/$path"), data.size.toLong(), sha256(data))
    }

    private val silero: ByteArray by lazy { File(Fixtures.realModel("silero-vad")).readBytes() }

    private fun runs(engine: Engine) {
        val out = engine.inferBlocking(mapOf(
            "input" to Tensor.of(FloatArray(512), 1, 512),
            "state" to Tensor.of(FloatArray(256), 2, 1, 128),
            "sr" to Tensor.of(longArrayOf(16000)),
        ))
        assertTrue(out.getValue("output").toFloatArray().single() in 0f..1f)
    }

    @Test fun downloadReportsProgressAndLoads() = runBlocking<Unit> {
        val entry = serve("silero-vad.onnx", silero)
        ModelStore(root).use { store ->
            val events = store.download(entry).toList()
            val done = assertIs<Download.Done>(events.last())
            val progress = events.filterIsInstance<Download.Progress>()
            assertTrue(progress.size >= 2, "$progress")
            assertEquals(Download.Progress(silero.size.toLong(), silero.size.toLong()), progress.last())
            assertContentEquals(silero, done.model.path.readBytes())
            done.model.load().use(::runs)
            // Installed: the second ensure fetches nothing.
            val before = served.get()
            store.ensure(entry).use { assertEquals(done.model.path, it.path) }
            assertEquals(before, served.get())
        }
    }

    @Test fun wrongBytesAreAnIntegrityFailureAndBadEntriesAreRefused() = runBlocking<Unit> {
        val entry = serve("silero-vad.onnx", silero).copy(sha256 = "0".repeat(64))
        ModelStore(root).use { store ->
            assertFailsWith<EngineException.IntegrityFailed> { store.ensure(entry) }
            assertFalse(File(root, "silero-vad.onnx/1/silero-vad.onnx").exists())
            val before = served.get()
            assertFailsWith<EngineException.InvalidConfig> { store.ensure(entry.copy(name = "../x.onnx")) }
            assertFailsWith<EngineException.InvalidConfig> { store.ensure(entry.copy(urls = listOf("http://example.com/m"))) }
            assertFailsWith<EngineException.InvalidConfig> { store.ensure(entry.copy(size = -1)) }
            assertEquals(before, served.get(), "refused before any byte was fetched")
        }
    }

    @Test fun cancellingTheCoroutineStopsTheDownloadAndItResumes() = runBlocking<Unit> {
        val entry = serve("silero-vad.onnx", silero)
        delayPerPieceMs = 30
        ModelStore(root).use { store ->
            var seen = 0L
            val job = launch { store.ensure(entry) { bytes, _ -> seen = bytes } }
            while (seen < 256 * 1024) delay(10)
            job.cancelAndJoin()
            val left = File(root, "silero-vad.onnx/1").list()!!.filter { it != ".lock" }
            assertEquals(1, left.size, "$left")
            assertTrue(left.single().startsWith(".partial-"))
            delayPerPieceMs = 0
            val servedBefore = served.get()
            store.ensure(entry).use { assertContentEquals(silero, it.path.readBytes()) }
            assertTrue(served.get() - servedBefore < silero.size, "resumed, not fetched again")
        }
    }

    @Test fun aSignedManifestIsTrustedAndATamperedOneIsNot() = runBlocking<Unit> {
        val keys = KeyPairGenerator.getInstance("Ed25519").generateKeyPair()
        // The raw 32-byte key is the end of the JDK's X.509 encoding.
        val publicKey = keys.public.encoded.takeLast(32).toByteArray()
        val entry = serve("silero-vad.onnx", silero)
        val json = JSONObject().put("format", 1).put("models", JSONArray().put(JSONObject()
            .put("name", entry.name).put("version", entry.version).put("urls", JSONArray(entry.urls))
            .put("size", entry.size).put("sha256", entry.sha256))).toString().toByteArray()
        val signature = Signature.getInstance("Ed25519").run { initSign(keys.private); update(json); sign() }
        files["models.json"] = json
        files["models.json.sig"] = signature
        ModelStore(root).use { store ->
            val manifest = store.fetchManifest("$base/models.json", "$base/models.json.sig", publicKey)
            assertEquals(listOf(entry), manifest.models)
            store.ensure(manifest.models.single()).use { it.load().use(::runs) }
        }
        val tampered = String(json).replace(entry.sha256.take(8), "00000000").toByteArray()
        assertFailsWith<EngineException.IntegrityFailed> { ModelStore.verifyManifest(tampered, signature, publicKey) }
        assertFailsWith<EngineException.InvalidConfig> { ModelStore.verifyManifest(json, signature, publicKey.copyOf(31)) }
    }

    @Test fun anUpdateInstallsBesideTheVersionAnEngineHolds() = runBlocking<Unit> {
        val v1 = serve("v1", silero, name = "vad.onnx", version = "1")
        val v2 = serve("v2", File(Fixtures.bundle("silero-vad"), "fp16.onnx").readBytes(), name = "vad.onnx", version = "2")
        ModelStore(root).use { store ->
            val old = store.ensure(v1).load()
            store.ensure(v2).use { installed ->
                assertEquals(setOf("1", "2"), File(root, "vad.onnx").list()!!.toSet())
                runs(old)
                installed.load().use(::runs)
            }
            old.close()
            assertEquals(setOf("2"), File(root, "vad.onnx").list()!!.toSet(), "the old version goes with its engine")
            assertEquals(listOf("vad.onnx"), store.stored().map { it.name })
            assertEquals(1, store.evict(0).size)
        }
    }

    @Test fun aBundleFetchesOnlyTheVariantThisDeviceRuns() = runBlocking<Unit> {
        val dir = Fixtures.bundle("silero-vad")
        val manifest = File(dir, "bundle.json").readBytes()
        val entry = serve("b/1/bundle.json", manifest, name = "silero-vad")
        val variants = JSONObject(String(manifest)).getJSONArray("variants")
        var whole = manifest.size.toLong()
        for (i in 0 until variants.length()) {
            val file = variants.getJSONObject(i).getString("file")
            files["b/1/$file"] = File(dir, file).readBytes()
            whole += files.getValue("b/1/$file").size
        }
        ModelStore(root).use { store ->
            store.ensureBundle(entry).use { installed ->
                installed.load().use { engine ->
                    runs(engine)
                    val chosen = File(dir, engine.precision!!.file).length()
                    assertEquals(manifest.size + chosen, served.get(), "bundle.json and ${engine.precision!!.file} only")
                    assertTrue(served.get() < whole / 2)
                }
            }
        }
    }

    @Test fun anEncryptedModelIsDecryptedInMemory() = runBlocking<Unit> {
        val key = ByteArray(32).also { SecureRandom().nextBytes(it) }
        val iv = ByteArray(12).also { SecureRandom().nextBytes(it) }
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, SecretKeySpec(key, "AES"), GCMParameterSpec(128, iv))
        val entry = serve("sealed", iv + cipher.doFinal(silero), name = "vad.sealed")
        fun open(sealed: ByteArray, with: ByteArray): ByteArray {
            val c = Cipher.getInstance("AES/GCM/NoPadding")
            c.init(Cipher.DECRYPT_MODE, SecretKeySpec(with, "AES"), GCMParameterSpec(128, sealed, 0, 12))
            return c.doFinal(sealed, 12, sealed.size - 12)
        }
        ModelStore(root).use { store ->
            store.openEncrypted(entry) { open(it, key) }.use(::runs)
            root.walk().filter { it.isFile }.forEach { assertFalse(it.readBytes().contentEquals(silero), "$it is in clear") }
            val wrong = ByteArray(32)
            val e = assertFailsWith<EngineException.IntegrityFailed> { store.openEncrypted(entry) { open(it, wrong) } }
            assertTrue("decryption failed" in e.message!!, e.message)
        }
    }
}
