package ai.openautoglm

import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.concurrent.thread
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking

/**
 * The JNI hot path (FastPath) is what engines use here, and it answers exactly as the uniffi path does: every
 * element type, every bad request, outputs into caller buffers, close during and after use, concurrent calls.
 */
class JniPathTest {
    private fun both(model: String, block: (Engine) -> Any?) {
        val results = listOf(true, false).map { jni ->
            Engine.fromFile(Fixtures.model(model), DefaultEngineConfig.copy(f16OutputsAsF32 = false)).use { engine ->
                engine.useJni = jni
                block(engine)
            }
        }
        assertEquals(results[0], results[1], "JNI and uniffi paths differ")
    }

    private fun direct(bytes: Int): ByteBuffer = ByteBuffer.allocateDirect(bytes).order(ByteOrder.LITTLE_ENDIAN)

    @Test fun theJniPathIsLoadedAndUsed() {
        assertTrue(FastPath.available, "the JVM loaded libopenautoglm_ffi's JNI entry point")
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertTrue(it.useJni) }
    }

    @Test fun everyElementTypeRoundTripsAlike() {
        val tensors = mapOf(
            "f32" to Tensor.of(floatArrayOf(1.5f, -2f, 0f, 3f, 4f, 5f), 2, 3),
            "f16" to Tensor.ofFloat16Bits(shortArrayOf(0x3C00, 0, 1, 2, 3, 4), 2, 3),
            "bf16" to Tensor.ofBFloat16Bits(shortArrayOf(0x3F80, 0, 1, 2, 3, 4), 2, 3),
            "f64" to Tensor.of(doubleArrayOf(1e300, 0.0, 1.0, 2.0, 3.0, 4.0), 2, 3),
            "i8" to Tensor.of(byteArrayOf(-128, 0, 1, 2, 3, 127), 2, 3),
            "u8" to Tensor.ofUnsigned(byteArrayOf(0, 1, 2, 3, 4, -1), 2, 3),
            "i16" to Tensor.of(shortArrayOf(-1, 0, 1, 2, 3, 4), 2, 3),
            "i32" to Tensor.of(intArrayOf(Int.MIN_VALUE, 0, 1, 2, 3, Int.MAX_VALUE), 2, 3),
            "i64" to Tensor.of(longArrayOf(Long.MIN_VALUE, 0, 1, 2, 3, Long.MAX_VALUE), 2, 3),
            "bool" to Tensor.of(booleanArrayOf(true, false, true, false, true, false), 2, 3),
            "string" to Tensor.ofStrings(listOf("a", "", "héllo", "日本", "x", "y"), 2, 3),
        ) + listOf("u16" to ElementType.U16, "u32" to ElementType.U32, "u64" to ElementType.U64).associate { (tag, type) ->
            tag to Tensor.of(type, direct(6 * Tensor.elementSize(type)).also { b -> repeat(b.capacity()) { b.put(it.toByte()) }; b.flip() }, 2, 3)
        }
        for ((tag, input) in tensors) {
            both("identity_$tag") { engine ->
                val out = engine.inferBlocking(mapOf("x" to input)).getValue("y")
                assertEquals(input.elementType, out.elementType, tag)
                assertContentEquals(longArrayOf(2, 3), out.shape, tag)
                if (input.elementType == ElementType.STRING) out.toStringList() else out.buffer.duplicate().rewind().let { b ->
                    ByteArray(b.remaining()).also { (b as ByteBuffer).get(it) }.toList()
                }
            }
        }
    }

    /** An input the model lacks travels by name, so the JNI path refuses it itself (no second call through uniffi). */
    @Test fun anUnknownInputTravelsByName() {
        val request = FastPath.Request()
        request.build(mapOf("z" to Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4)), mapOf("x" to 0), null, 1)
        assertEquals(-1L, request.layout[1])
        assertEquals("z", request.names[0])
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { engine ->
            val e = assertFailsWith<EngineException.InvalidInput> { engine.inferBlocking(mapOf("z" to Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4))) }
            assertEquals("z", e.name)
        }
    }

    @Test fun everyBadRequestIsTheSameTypedErrorAndTheEngineStaysUsable() {
        val good = Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4)
        val bigEndian = Tensor.of(ElementType.F32, ByteBuffer.allocateDirect(16), 1, 4)
        val requests = listOf(
            mapOf("z" to good),
            emptyMap(),
            mapOf("x" to good, "extra" to good),
            mapOf("x" to Tensor.of(longArrayOf(1, 2, 3, 4), 1, 4)),
            mapOf("x" to Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 4)),
            mapOf("x" to Tensor.of(FloatArray(5), 1, 5)),
            mapOf("x" to bigEndian),
        )
        both("matmul_dynamic") { engine ->
            val errors = requests.map { request ->
                val e = assertFailsWith<EngineException.InvalidInput> { engine.inferBlocking(request) }
                e.name to e.message
            }
            errors + engine.inferBlocking(mapOf("x" to good)).getValue("y").toFloatArray().toList()
        }
    }

    @Test fun outputsGoIntoCallerBuffers() {
        val x = Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4)
        both("matmul_dynamic") { engine ->
            val want = engine.inferBlocking(mapOf("x" to x)).getValue("y").toFloatArray()
            val y = direct(3 * 4)
            repeat(3) { assertEquals(emptyMap(), engine.inferIntoBlocking(mapOf("x" to x), mapOf("y" to y))) }
            val got = FloatArray(3).also { y.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(it) }
            assertContentEquals(want, got)
            val wrong = assertFailsWith<EngineException.InvalidInput> { engine.inferIntoBlocking(mapOf("x" to x), mapOf("y" to direct(8))) }
            assertEquals("y", wrong.name)
            assertFailsWith<EngineException.InvalidInput> { engine.inferIntoBlocking(mapOf("x" to x), mapOf("y" to ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN))) }
            assertFailsWith<EngineException.InvalidInput> { engine.inferIntoBlocking(mapOf("x" to x), mapOf("nope" to direct(12))) }
            // No buffer: the output comes back allocated, as from inferBlocking.
            engine.inferIntoBlocking(mapOf("x" to x), emptyMap()).getValue("y").toFloatArray().toList() + got.toList()
        }
    }

    @Test fun closeAfterAndDuringUseIsEngineClosedNeverACrash() {
        val size = 384
        val x = Tensor.of(FloatArray(size * size) { 1f / size }, size, size)
        val engine = Engine.fromFile(Fixtures.model("matmul_chain"))
        assertTrue(engine.useJni)
        var during: Throwable? = null
        val running = thread { during = runCatching { engine.inferBlocking(mapOf("x" to x)) }.exceptionOrNull() }
        Thread.sleep(30)
        engine.close()
        running.join()
        assertTrue(during == null || during is EngineException.EngineClosed, "$during")
        assertFailsWith<EngineException.EngineClosed> { engine.inferBlocking(mapOf("x" to x)) }
        assertFailsWith<EngineException.EngineClosed> { engine.inferIntoBlocking(mapOf("x" to x), emptyMap()) }
    }

    @Test fun concurrentCallsGiveTheSerialResults() = runBlocking {
        Engine.fromFile(Fixtures.model("matmul_dynamic"), DefaultEngineConfig.copy(concurrency = 2)).use { engine ->
            val inputs = (1..8).map { b -> Tensor.of(FloatArray(b * 4) { it * 0.25f - b }, b, 4) }
            val serial = inputs.map { engine.inferBlocking(mapOf("x" to it)).getValue("y").toFloatArray().toList() }
            val parallel = (0 until 4).map { t ->
                async(kotlinx.coroutines.Dispatchers.Default) {
                    (0 until 50).map { i -> val k = (i + t) % inputs.size; k to engine.inferBlocking(mapOf("x" to inputs[k])).getValue("y").toFloatArray().toList() }
                }
            }.awaitAll().flatten()
            for ((k, got) in parallel) assertEquals(serial[k], got)
        }
    }
}
