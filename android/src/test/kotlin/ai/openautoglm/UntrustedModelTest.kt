package ai.openautoglm

import java.io.File
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** A model is untrusted input: external data stays where the app says, buffers stay under the memory limit. */
class UntrustedModelTest {
    private val dir = File(Fixtures.data, "external")
    private val model = File(dir, "model.onnx").readBytes()

    @Test fun externalDataOfAModelFromBytesNeedsANamedDirectory() {
        val e = assertFailsWith<EngineException.InvalidModel> { Engine.fromBytes(model) }
        assertTrue("external data" in e.reason, e.reason)
        Engine.fromBytes(model, DefaultEngineConfig.copy(externalDataDir = dir.path)).use { engine ->
            val y = engine.inferBlocking(emptyMap()).getValue("y").toByteArray()
            assertContentEquals(ByteArray(16) { it.toByte() }, y)
        }
    }

    @Test fun outputsOverTheMemoryLimitAreTypedErrors() {
        Engine.fromFile(Fixtures.model("matmul_dynamic"), DefaultEngineConfig.copy(memoryLimitMb = 1)).use { engine ->
            val rows = 100_000
            val e = assertFailsWith<EngineException.MemoryLimit> {
                engine.inferBlocking(mapOf("x" to Tensor.of(FloatArray(rows * 4), rows, 4)))
            }
            assertTrue("output `y`" in e.reason, e.reason)
            val y = engine.inferBlocking(mapOf("x" to Tensor.of(FloatArray(4), 1, 4))).getValue("y").toFloatArray()
            assertEquals(3, y.size)
        }
    }
}
