package ai.openautoglm

import kotlin.test.Test
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/**
 * Runs in its own JVM (surefire reuseForks=false): the native library is pointed at a file that does not exist
 * before anything loads it, as when an app lacks the library for its platform.
 */
class NativeLibraryTest {
    @Test fun missingNativeLibraryIsTheSdksTypedErrorSayingWhatToAdd() {
        System.setProperty("uniffi.component.openautoglm_ffi.libraryOverride", "/no/such/libopenautoglm_ffi.so")
        val e = assertFailsWith<EngineException.NativeLibraryUnavailable> { Engine.fromFile(Fixtures.model("matmul_dynamic")) }
        val message = e.message!!
        assertTrue("/no/such/libopenautoglm_ffi.so" in message, message)
        assertTrue("ai.openautoglm:openautoglm-jvm" in message && "AAR" in message, message)
        assertTrue(e.cause is LinkageError, "the loader's own error is kept as the cause")
        // Every entry point says the same, every time (no half-initialised state after the first failure).
        assertFailsWith<EngineException.NativeLibraryUnavailable> { OpenAutoGLM.loadRuntime() }
        assertFailsWith<EngineException.NativeLibraryUnavailable> { Llm.open("/no/such/llm") }
    }
}
