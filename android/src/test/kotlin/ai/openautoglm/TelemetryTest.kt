package ai.openautoglm

import java.io.File
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse

/**
 * ONNX Runtime's telemetry stays off unless the app opts in. `cargo xtask test` gives every test JVM an empty
 * XDG_CACHE_HOME, where Microsoft's ONNX Runtime build keeps its telemetry store: after engines ran in this JVM (and
 * in the forks before it), it must hold no event. (The Rust telemetry test also shows an opted-in process records.)
 */
class TelemetryTest {
    @Test fun telemetryIsOffByDefaultAndRecordsNothing() {
        assertFalse(OpenAutoGLM.telemetryEnabled)
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { engine ->
            val y = engine.inferBlocking(mapOf("x" to Tensor.of(floatArrayOf(0.5f, -1f, 2f, 4f), 1, 4))).getValue("y")
            assertEquals(3, y.toFloatArray().size)
        }
        // Too late to opt in once the runtime is loaded: a typed error, and still off.
        assertFailsWith<EngineException.InvalidConfig> { OpenAutoGLM.setTelemetry(true) }
        assertFalse(OpenAutoGLM.telemetryEnabled)
        OpenAutoGLM.setTelemetry(false)
        val home = File(System.getenv("XDG_CACHE_HOME") ?: error("XDG_CACHE_HOME is not set: run `cargo xtask test`"))
        val store = File(home, "Microsoft/DeveloperTools/.onnxruntime")
        val recorded = store.listFiles().orEmpty().filter { "ProcessInfo" in it.readBytes().toString(Charsets.ISO_8859_1) }
        assertEquals(emptyList(), recorded.map { it.name }, "ONNX Runtime recorded telemetry events in $store")
    }
}
