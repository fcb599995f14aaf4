package ai.openautoglm

import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** Runs in its own JVM (surefire reuseForks=false), so the runtime is not loaded before these tests. */
class RuntimeTest {
    @Test fun missingRuntimeLibraryIsTypedAndRecoverable() {
        val e = assertFailsWith<EngineException.RuntimeUnavailable> { OpenAutoGLM.loadRuntime("/no/such/libonnxruntime.so") }
        assertEquals("/no/such/libonnxruntime.so", e.path)
        // The message names the Kotlin call that fixes it, not the Rust one.
        assertTrue("OpenAutoGLM.loadRuntime(path)" in e.message!!, e.message)
        assertTrue("Runtime::init" !in e.message!!, e.message)
        // A real ONNX Runtime older than the SDK needs (1.20.1, from its PyPI wheel): typed, naming both versions.
        val old = System.getenv("OPENAUTOGLM_OLD_ORT") ?: error("OPENAUTOGLM_OLD_ORT is not set (run cargo xtask test)")
        val tooOld = assertFailsWith<EngineException.RuntimeTooOld> { OpenAutoGLM.loadRuntime(old) }
        assertEquals("1.22", tooOld.required)
        assertEquals("1.20.1", tooOld.loaded)
        assertTrue("1.22" in tooOld.message!! && "1.20.1" in tooOld.message!!, tooOld.message)
        val info = OpenAutoGLM.loadRuntime(Fixtures.ortPath)
        // The runtime these tests run is the one the published jar carries.
        assertEquals(System.getProperty("openautoglm.onnxruntimeVersion"), info.ortVersion)
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertEquals(1, it.info.inputs.size) }
        // Asking for a missing library later is still an error, and the loaded runtime keeps working.
        assertFailsWith<EngineException.RuntimeUnavailable> { OpenAutoGLM.loadRuntime("/still/missing.so") }
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertEquals(1, it.info.outputs.size) }
    }
}
