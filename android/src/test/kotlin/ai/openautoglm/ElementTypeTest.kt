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

    /** The codes the JNI fast path sends (the enum's ordinal) are the Rust side's table. */
    @Test fun fastPathCodesAreTheNativeTable() {
        assertEquals(14, ElementType.entries.size)
        for (type in ElementType.entries) assertEquals(type.ordinal.toUInt(), elementTypeCode(type), "$type")
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

    @Test fun bf16FromRawBits() {
        // 1.0, -2.0, 0.5, 3.0e38 (near the max), 0, -0.25 as bfloat16: the upper 16 bits of each float32
        val bits = floatArrayOf(1f, -2f, 0.5f, 3.0e38f, 0f, -0.25f).map { (it.toRawBits() ushr 16).toShort() }.toShortArray()
        assertContentEquals(bits, roundTrip("bf16", Tensor.ofBFloat16Bits(bits, 2, 3)).toBFloat16Bits())
    }

    @Test fun strings() {
        val v = listOf("", "plain", "héllo wörld", "日本語", "emoji \uD83D\uDE42", "tab\tand\nnewline")
        val out = roundTrip("string", Tensor.ofStrings(v, 2, 3))
        assertEquals(v, out.toStringList())
        assertContentEquals(v.toTypedArray(), roundTrip("string", Tensor.ofStrings(v.toTypedArray(), 2, 3)).toStringArray())
        // The count must match the shape where the tensor is built; a NUL is refused by the engine, which stays usable.
        kotlin.test.assertFailsWith<EngineException.InvalidInput> { Tensor.ofStrings(v, 2, 2) }
        Engine.fromFile(Fixtures.model("identity_string")).use { engine ->
            val e = kotlin.test.assertFailsWith<EngineException.InvalidInput> {
                engine.inferBlocking(mapOf("x" to Tensor.ofStrings(List(6) { "a\u0000b" }, 2, 3)))
            }
            kotlin.test.assertTrue("NUL" in e.reason, e.reason)
            assertEquals(List(6) { "ok" }, engine.inferBlocking(mapOf("x" to Tensor.ofStrings(List(6) { "ok" }, 2, 3))).getValue("y").toStringList())
        }
    }

    /** A real string operator from the ONNX node tests, with python onnxruntime's recorded output. */
    @Test fun stringConcatMatchesPythonOnnxruntime() {
        val case = org.json.JSONObject(java.io.File(Fixtures.data, "string_nodes.json").readText()).getJSONObject("test_string_concat_utf8")
        fun tensor(entry: org.json.JSONObject): Tensor {
            val values = entry.getJSONArray("values").let { a -> List(a.length()) { a.getString(it) } }
            val shape = entry.getJSONArray("shape").let { a -> LongArray(a.length()) { a.getLong(it) } }
            return Tensor.ofStrings(values, shape)
        }
        Engine.fromFile(java.io.File(Fixtures.data, "models/node/test_string_concat_utf8.onnx").path).use { engine ->
            val inputs = case.getJSONArray("inputs").let { a -> (0 until a.length()).associate { a.getJSONObject(it).getString("name") to tensor(a.getJSONObject(it)) } }
            val want = tensor(case.getJSONArray("outputs").getJSONObject(0))
            val got = engine.inferBlocking(inputs).values.single()
            assertEquals(want.toStringList(), got.toStringList())
            assertContentEquals(want.shape, got.shape)
        }
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
