package ai.openautoglm

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/** Every kind of bad input gives its typed exception, and the engine keeps working afterwards. */
class BadInputTest {
    private val engine = Engine.fromFile(Fixtures.model("matmul_dynamic"))
    private val good = mapOf("x" to Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4))

    @AfterTest fun stillWorksThenClose() {
        assertEquals(3, engine.inferBlocking(good).getValue("y").toFloatArray().size)
        engine.close()
    }

    private fun tempFile(bytes: ByteArray): String =
        File.createTempFile("openautoglm", ".onnx").apply { deleteOnExit(); writeBytes(bytes) }.path

    private inline fun <reified E : EngineException> badInput(inputs: Map<String, Tensor>, name: String): E {
        val e = assertFailsWith<E> { engine.inferBlocking(inputs) }
        if (e is EngineException.InvalidInput) assertEquals(name, e.name)
        return e
    }

    @Test fun missingFile() {
        val e = assertFailsWith<EngineException.ModelNotFound> { Engine.fromFile("/no/such/model.onnx") }
        assertEquals("/no/such/model.onnx", e.path)
    }

    @Test fun emptyFile() { assertFailsWith<EngineException.InvalidModel> { Engine.fromFile(tempFile(ByteArray(0))) } }

    @Test fun truncatedModel() {
        val bytes = File(Fixtures.model("matmul_dynamic")).readBytes()
        assertFailsWith<EngineException.InvalidModel> { Engine.fromFile(tempFile(bytes.copyOf(bytes.size / 2))) }
        assertFailsWith<EngineException.InvalidModel> { Engine.fromBytes(bytes.copyOf(bytes.size / 2)) }
    }

    @Test fun notAnOnnxFile() {
        assertFailsWith<EngineException.InvalidModel> { Engine.fromFile(tempFile("hello, I am not a model\n".toByteArray())) }
        assertFailsWith<EngineException.InvalidModel> { Engine.fromBytes(ByteArray(0)) }
    }

    @Test fun wrongInputName() { badInput<EngineException.InvalidInput>(mapOf("z" to good.getValue("x")), "z") }

    @Test fun missingInput() { badInput<EngineException.InvalidInput>(emptyMap(), "x") }

    @Test fun extraInput() {
        badInput<EngineException.InvalidInput>(good + ("extra" to Tensor.of(floatArrayOf(1f), 1)), "extra")
    }

    @Test fun wrongElementType() {
        val e = badInput<EngineException.InvalidInput>(mapOf("x" to Tensor.of(longArrayOf(1, 2, 3, 4), 1, 4)), "x")
        assertTrue("f32" in e.reason && "i64" in e.reason, e.reason)
    }

    @Test fun wrongRank() { badInput<EngineException.InvalidInput>(mapOf("x" to Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 4)), "x") }

    @Test fun wrongFixedDim() {
        val e = badInput<EngineException.InvalidInput>(mapOf("x" to Tensor.of(FloatArray(5), 1, 5)), "x")
        assertTrue("must be 4" in e.reason, e.reason)
    }

    /** A tensor whose data does not fill its shape is refused where it is built, not later at inference. */
    @Test fun dataLengthNotMatchingShapeFailsAtConstruction() {
        val builds = listOf(
            { Tensor.of(FloatArray(6), 2, 4) },
            { Tensor.of(ElementType.F32, ByteBuffer.allocateDirect(15).order(ByteOrder.LITTLE_ENDIAN), 1, 4) },
            { Tensor.of(ElementType.F32, ByteBuffer.allocateDirect(12).order(ByteOrder.LITTLE_ENDIAN), 1, 4) },
            { Tensor.of(FloatArray(4), -1, 4) },
            { Tensor.of(FloatArray(4), longArrayOf(Long.MAX_VALUE, 2)) },
        )
        for (build in builds) {
            val e = assertFailsWith<EngineException.InvalidInput> { build() }
            assertEquals("tensor", e.name)
            assertTrue(e.message!!.startsWith("invalid input `tensor`: "), e.message)
        }
        // Int shapes need no conversion; the LongArray form takes ONNX's own dimension type.
        val rows: Int = 2
        assertContentEquals(longArrayOf(2, 4), Tensor.of(FloatArray(8), rows, 4).shape)
        assertContentEquals(longArrayOf(0, 4), Tensor.of(FloatArray(0), longArrayOf(0, 4)).shape)
    }

    /** Messages are sentences with the fields in them, not `name=..., reason=...` dumps. */
    @Test fun exceptionMessagesReadAsSentences() {
        val e = badInput<EngineException.InvalidInput>(mapOf("x" to Tensor.of(FloatArray(5), 1, 5)), "x")
        assertEquals("invalid input `x`: ${e.reason}", e.message)
        val missing = assertFailsWith<EngineException.ModelNotFound> { Engine.fromFile("/no/such/model.onnx") }
        assertEquals("model not found or not readable: `/no/such/model.onnx`", missing.message)
        assertTrue("reason=" !in missing.toString() && "path=" !in missing.toString(), missing.toString())
    }

    @Test fun zeroSizeTensorRuns() {
        val y = engine.inferBlocking(mapOf("x" to Tensor.of(FloatArray(0), 0, 4))).getValue("y")
        assertContentEquals(longArrayOf(0, 3), y.shape)
        assertEquals(0, y.toFloatArray().size)
    }

    @Test fun nanValuesAreAllowed() {
        val y = engine.inferBlocking(mapOf("x" to Tensor.of(floatArrayOf(Float.NaN, 1f, 2f, 3f), 1, 4))).getValue("y").toFloatArray()
        assertTrue(y.all { it.isNaN() })
    }

    @Test fun errorMessagesNeverCarryTensorContents() {
        val e = assertFailsWith<EngineException.InvalidInput> {
            engine.inferBlocking(mapOf("x" to Tensor.of(floatArrayOf(123.456f, 789.25f, 1f), 1, 3)))
        }
        assertTrue("123.456" !in e.message!! && "789.25" !in e.message!!, e.message)
    }

    @Test fun bigEndianByteBufferIsRefusedNotMisread() {
        // Java's default byte order, filled the natural way: the floats' bytes are big-endian.
        val bigEndian = ByteBuffer.allocateDirect(16)
        floatArrayOf(1f, 2f, 3f, 4f).forEach { bigEndian.putFloat(it) }
        bigEndian.flip()
        val e = badInput<EngineException.InvalidInput>(mapOf("x" to Tensor.of(ElementType.F32, bigEndian, 1, 4)), "x")
        assertTrue("LITTLE_ENDIAN" in e.reason, e.reason)
        // The same values in little-endian order run and give the right answer.
        val little = ByteBuffer.allocateDirect(16).order(ByteOrder.LITTLE_ENDIAN)
        floatArrayOf(1f, 2f, 3f, 4f).forEach { little.putFloat(it) }
        little.flip()
        val y = engine.inferBlocking(mapOf("x" to Tensor.of(ElementType.F32, little, 1, 4))).getValue("y").toFloatArray()
        assertContentEquals(engine.inferBlocking(good).getValue("y").toFloatArray(), y)
        // One-byte elements have no byte order: a default buffer is fine.
        assertEquals(ByteOrder.BIG_ENDIAN, ByteBuffer.allocate(4).order())
    }

    @Test fun negativeWarmupRunsAreATypedError() {
        val e = assertFailsWith<EngineException.InvalidConfig> { engine.warmupBlocking(-1) }
        assertTrue("-1" in e.reason, e.reason)
        assertFailsWith<EngineException.InvalidConfig> { engine.warmupBlocking(Int.MAX_VALUE) }
        assertEquals(2, engine.warmupBlocking(2).size)
    }

    @Test fun logLevelIsSettable() {
        val before = OpenAutoGLM.logLevel
        OpenAutoGLM.logLevel = LogLevel.ERROR
        assertEquals(LogLevel.ERROR, OpenAutoGLM.logLevel)
        // A failed inference is still a typed exception whatever is logged.
        assertFailsWith<EngineException.InvalidInput> { engine.inferBlocking(emptyMap()) }
        OpenAutoGLM.logLevel = before
    }
}
