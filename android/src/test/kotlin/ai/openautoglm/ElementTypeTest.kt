package ai.openautoglm

import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals

/** Every element type goes in and comes back unchanged through an Identity model. */
class ElementTypeTest {
    private fun roundTrip(tag: String, input: Tensor): Tensor =
        // Element types exactly as the model declares them (float16 outputs not widened to float32).
        Engine.fromFile(Fixtures.model("identity_$tag"), DefaultEngineConfig.copy(f16OutputsAsF32 = false)).use { engine ->
            val out = engine.inferBlocking(mapOf("x" to input)).getValue("y")
            assertEquals(input.elementType, out.elementType)
            assertContentEquals(longArrayOf(2, 3), out.shape)
            out
        }

    @Test fun f32() {
        val v = floatArrayOf(1.5f, -2f, 0f, Float.MAX_VALUE, Float.MIN_VALUE, -0.25f)
        assertContentEquals(v, roundTrip("f32", Tensor.of(v, 2, 3)).toFloatArray())
    }

    @Test fun f16FromBits() {
        // 1.0, -2.0, 0.5, 65504 (max), 0, -0 as IEEE binary16
        val bits = shortArrayOf(0x3C00, 0xC000.toShort(), 0x3800, 0x7BFF, 0, 0x8000.toShort())
        assertContentEquals(bits, roundTrip("f16", Tensor.ofFloat16Bits(bits, 2, 3)).toFloat16Bits())
    }

    @Test fun f64() {
        val v = doubleArrayOf(1e300, -1e-300, 0.0, 3.25, -7.0, 42.0)
        assertContentEquals(v, roundTrip("f64", Tensor.of(v, 2, 3)).toDoubleArray())
    }

    @Test fun i8() {
        val v = byteArrayOf(-128, -1, 0, 1, 64, 127)
        assertContentEquals(v, roundTrip("i8", Tensor.of(v, 2, 3)).toByteArray())
    }

    @Test fun u8() {
        val v = byteArrayOf(0, 1, 127, 128.toByte(), 200.toByte(), 255.toByte())
        val out = roundTrip("u8", Tensor.ofUnsigned(v, 2, 3))
        assertEquals(ElementType.U8, out.elementType)
        assertContentEquals(v, out.toByteArray())
    }

    @Test fun i16() {
        val v = shortArrayOf(Short.MIN_VALUE, -1, 0, 1, 1000, Short.MAX_VALUE)
        assertContentEquals(v, roundTrip("i16", Tensor.of(v, 2, 3)).toShortArray())
    }

    @Test fun i32() {
        val v = intArrayOf(Int.MIN_VALUE, -1, 0, 1, 123456, Int.MAX_VALUE)
        assertContentEquals(v, roundTrip("i32", Tensor.of(v, 2, 3)).toIntArray())
    }

    @Test fun i64() {
        val v = longArrayOf(Long.MIN_VALUE, -1, 0, 1, 1L shl 40, Long.MAX_VALUE)
        assertContentEquals(v, roundTrip("i64", Tensor.of(v, 2, 3)).toLongArray())
    }

    @Test fun bool() {
        val v = booleanArrayOf(true, false, false, true, true, false)
        assertContentEquals(v, roundTrip("bool", Tensor.of(v, 2, 3)).toBooleanArray())
    }

    @Test fun unsignedWideTypesFromRawBuffers() {
        for ((tag, type) in listOf("u16" to ElementType.U16, "u32" to ElementType.U32, "u64" to ElementType.U64)) {
            val size = Tensor.elementSize(type)
            val bytes = ByteArray(6 * size) { (it * 37 + 5).toByte() }
            val input = Tensor.of(type, java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN), 2, 3)
            val out = roundTrip(tag, input)
            assertEquals(type, out.elementType)
            val back = ByteArray(out.byteSize).also { out.buffer.duplicate().get(it) }
            assertContentEquals(bytes, back)
        }
    }
}
