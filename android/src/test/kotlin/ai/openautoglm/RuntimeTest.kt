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
        val info = OpenAutoGLM.loadRuntime(Fixtures.ortPath)
        assertTrue(info.ortVersion.startsWith("1."), info.ortVersion)
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertEquals(1, it.info.inputs.size) }
        // Asking for a missing library later is still an error, and the loaded runtime keeps working.
        assertFailsWith<EngineException.RuntimeUnavailable> { OpenAutoGLM.loadRuntime("/still/missing.so") }
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertEquals(1, it.info.outputs.size) }
    }
}
