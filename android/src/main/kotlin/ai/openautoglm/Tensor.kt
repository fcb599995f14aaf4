package ai.openautoglm

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * A tensor: an element type, a shape and its elements in one little-endian buffer. Inputs are built from Kotlin
 * arrays or buffers with one bulk copy (none for a direct [ByteBuffer]); outputs are read back the same way.
 */
class Tensor private constructor(
    val elementType: ElementType,
    shape: LongArray,
    /** The elements, little-endian, position 0. Direct for inputs made here, heap for outputs. */
    internal val buffer: ByteBuffer,
    /** Why the engine must refuse this tensor (a caller's buffer in the wrong byte order), or null. */
    internal val refusal: String? = null,
) {
    private val dims: LongArray = shape.copyOf()

    /** The shape (a copy). */
    val shape: LongArray get() = dims.copyOf()

    /** Number of elements. */
    val elementCount: Long get() = dims.fold(1L) { acc, d -> acc * d }

    /** Size of the data in bytes. */
    val byteSize: Int get() = buffer.limit()

    internal val rank: Int get() = dims.size

    /** Copies the shape into [into] from [at], without allocating (the JNI request layout). */
    internal fun copyShapeInto(into: LongArray, at: Int) = dims.copyInto(into, at)

    fun toFloatArray(): FloatArray = read(ElementType.F32) { b, n -> FloatArray(n).also { b.asFloatBuffer().get(it) } }
    fun toDoubleArray(): DoubleArray = read(ElementType.F64) { b, n -> DoubleArray(n).also { b.asDoubleBuffer().get(it) } }
    fun toLongArray(): LongArray = read(ElementType.I64, ElementType.U64) { b, n -> LongArray(n).also { b.asLongBuffer().get(it) } }
    fun toIntArray(): IntArray = read(ElementType.I32, ElementType.U32) { b, n -> IntArray(n).also { b.asIntBuffer().get(it) } }
    fun toShortArray(): ShortArray = read(ElementType.I16, ElementType.U16) { b, n -> ShortArray(n).also { b.asShortBuffer().get(it) } }
    /** IEEE half-precision bit patterns (Android: `android.util.Half`; JVM 20+: `Float.float16ToFloat`). */
    fun toFloat16Bits(): ShortArray = read(ElementType.F16) { b, n -> ShortArray(n).also { b.asShortBuffer().get(it) } }
    fun toByteArray(): ByteArray = read(ElementType.I8, ElementType.U8) { b, n -> ByteArray(n).also { b.get(it) } }
    fun toBooleanArray(): BooleanArray = read(ElementType.BOOL) { b, n -> BooleanArray(n) { b.get(it) != 0.toByte() } }
    /** bfloat16 bit patterns: the upper 16 bits of the float32 each stands for (`Float.fromBits(bits.toInt() shl 16)`). */
    fun toBFloat16Bits(): ShortArray = read(ElementType.BF16) { b, n -> ShortArray(n).also { b.asShortBuffer().get(it) } }

    /** The elements of a string tensor, in row-major order. */
    fun toStringList(): List<String> {
        if (elementType != ElementType.STRING) throw IllegalStateException("tensor holds $elementType, not STRING")
        val b = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN).rewind() as ByteBuffer
        val strings = ArrayList<String>()
        while (b.remaining() >= 4) {
            val bytes = ByteArray(b.getInt())
            b.get(bytes)
            strings += String(bytes, Charsets.UTF_8)
        }
        return strings
    }

    fun toStringArray(): Array<String> = toStringList().toTypedArray()

    private inline fun <T> read(vararg allowed: ElementType, block: (ByteBuffer, Int) -> T): T {
        if (elementType !in allowed) {
            throw IllegalStateException("tensor holds $elementType, not ${allowed.joinToString(" or ")}")
        }
        return block(buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN).rewind() as ByteBuffer, buffer.limit() / elementSize(elementType))
    }

    override fun toString(): String = "Tensor($elementType, shape=${dims.contentToString()})"

    companion object {
        // Shapes are `vararg Int` (`Tensor.of(data, 1, n)`) or a LongArray (ONNX's own dimension type); a shape that
        // does not hold exactly the data's elements is refused here, with EngineException.InvalidInput.
        @JvmStatic @Throws(EngineException::class)
        fun of(data: FloatArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: FloatArray, shape: LongArray) = build(ElementType.F32, shape, data.size) { it.asFloatBuffer().put(data) }
        @JvmStatic @Throws(EngineException::class)
        fun of(data: DoubleArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: DoubleArray, shape: LongArray) = build(ElementType.F64, shape, data.size) { it.asDoubleBuffer().put(data) }
        @JvmStatic @Throws(EngineException::class)
        fun of(data: LongArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: LongArray, shape: LongArray) = build(ElementType.I64, shape, data.size) { it.asLongBuffer().put(data) }
        @JvmStatic @Throws(EngineException::class)
        fun of(data: IntArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: IntArray, shape: LongArray) = build(ElementType.I32, shape, data.size) { it.asIntBuffer().put(data) }
        @JvmStatic @Throws(EngineException::class)
        fun of(data: ShortArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: ShortArray, shape: LongArray) = build(ElementType.I16, shape, data.size) { it.asShortBuffer().put(data) }
        @JvmStatic @Throws(EngineException::class)
        fun of(data: ByteArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: ByteArray, shape: LongArray) = build(ElementType.I8, shape, data.size) { it.put(data) }
        @JvmStatic @Throws(EngineException::class)
        fun of(data: BooleanArray, vararg shape: Int) = of(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun of(data: BooleanArray, shape: LongArray) = build(ElementType.BOOL, shape, data.size) { b ->
            data.forEach { b.put(if (it) 1 else 0) } // JVM booleans have no bulk byte view
        }
        @JvmStatic @Throws(EngineException::class)
        fun ofUnsigned(data: ByteArray, vararg shape: Int) = ofUnsigned(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun ofUnsigned(data: ByteArray, shape: LongArray) = build(ElementType.U8, shape, data.size) { it.put(data) }

        /** Half-precision input from IEEE binary16 bit patterns. */
        @JvmStatic @Throws(EngineException::class)
        fun ofFloat16Bits(data: ShortArray, vararg shape: Int) = ofFloat16Bits(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun ofFloat16Bits(data: ShortArray, shape: LongArray) = build(ElementType.F16, shape, data.size) { it.asShortBuffer().put(data) }

        /** bfloat16 input from its raw 16-bit patterns (the upper half of each float32's bits). */
        @JvmStatic @Throws(EngineException::class)
        fun ofBFloat16Bits(data: ShortArray, vararg shape: Int) = ofBFloat16Bits(data, longs(shape))
        @JvmStatic @Throws(EngineException::class)
        fun ofBFloat16Bits(data: ShortArray, shape: LongArray) = build(ElementType.BF16, shape, data.size) { it.asShortBuffer().put(data) }

        /** A string tensor (UTF-8 in the engine): `Tensor.ofStrings(listOf("a", "b"), 2)`. */
        @JvmStatic @Throws(EngineException::class)
        fun ofStrings(data: List<String>, vararg shape: Int) = ofStrings(data, longs(shape))

        @JvmStatic @Throws(EngineException::class)
        fun ofStrings(data: Array<String>, vararg shape: Int) = ofStrings(data.asList(), longs(shape))

        @JvmStatic @Throws(EngineException::class)
        fun ofStrings(data: List<String>, shape: LongArray): Tensor {
            checkShape(shape, data.size)
            // The engine's string form: per element its UTF-8 length (little-endian u32), then the bytes.
            val encoded = data.map { it.toByteArray(Charsets.UTF_8) }
            val buffer = ByteBuffer.allocateDirect(encoded.sumOf { 4 + it.size }).order(ByteOrder.LITTLE_ENDIAN)
            for (bytes in encoded) buffer.putInt(bytes.size).put(bytes)
            buffer.rewind()
            return Tensor(ElementType.STRING, shape, buffer)
        }

        /**
         * A tensor over [data]'s remaining bytes, read as little-endian [type] elements. A direct buffer at
         * position 0 is used in place (zero copy); anything else is copied once.
         *
         * The buffer must be in little-endian order (`data.order(ByteOrder.LITTLE_ENDIAN)` before filling it, or
         * `ByteOrder.nativeOrder()` on Android): Java's default is big-endian, and `putFloat` on such a buffer writes
         * bytes the engine would read as other numbers. Inference refuses a multi-byte tensor over a big-endian
         * buffer with [EngineException.InvalidInput] rather than guess which order its bytes were written in.
         */
        @JvmStatic @Throws(EngineException::class)
        fun of(type: ElementType, data: ByteBuffer, vararg shape: Int): Tensor = of(type, data, longs(shape))

        @JvmStatic @Throws(EngineException::class)
        fun of(type: ElementType, data: ByteBuffer, shape: LongArray): Tensor {
            if (type == ElementType.STRING) throw EngineException.InvalidInput("tensor", "string tensors are built with Tensor.ofStrings")
            val size = elementSize(type)
            if (data.remaining() % size != 0) {
                throw EngineException.InvalidInput("tensor", "${data.remaining()} bytes is not a whole number of $type elements ($size bytes each)")
            }
            checkShape(shape, data.remaining() / size)
            val direct = if (data.isDirect && data.position() == 0) data else {
                ByteBuffer.allocateDirect(data.remaining()).order(ByteOrder.LITTLE_ENDIAN).put(data.duplicate()).also { it.flip() }
            }
            val refusal = if (data.order() == ByteOrder.BIG_ENDIAN && size > 1) {
                "the ByteBuffer is BIG_ENDIAN (Java's default), but tensors are little-endian: call " +
                    "order(ByteOrder.LITTLE_ENDIAN) on it before filling it"
            } else null
            return Tensor(type, shape, direct, refusal)
        }

        private fun longs(shape: IntArray) = LongArray(shape.size) { shape[it].toLong() }

        /** Refuses a negative dimension, or a shape whose element count is not [count]. */
        private fun checkShape(shape: LongArray, count: Int) {
            var elements = 1L
            for (d in shape) {
                if (d < 0) throw EngineException.InvalidInput("tensor", "shape ${shape.contentToString()} has a negative dimension")
                elements = try { Math.multiplyExact(elements, d) } catch (_: ArithmeticException) { Long.MAX_VALUE }
            }
            if (elements != count.toLong()) {
                throw EngineException.InvalidInput(
                    "tensor", "shape ${shape.contentToString()} holds $elements elements but the data has $count",
                )
            }
        }

        private inline fun build(type: ElementType, shape: LongArray, count: Int, fill: (ByteBuffer) -> Unit): Tensor {
            checkShape(shape, count)
            val buffer = ByteBuffer.allocateDirect(count * elementSize(type)).order(ByteOrder.LITTLE_ENDIAN)
            fill(buffer)
            buffer.rewind()
            return Tensor(type, shape, buffer)
        }

        internal fun fromFast(output: FastPath.Output): Tensor =
            Tensor(ElementType.entries[output.type], output.shape, ByteBuffer.wrap(output.data).order(ByteOrder.LITTLE_ENDIAN))

        internal fun fromNative(native: NativeTensor): Tensor =
            Tensor(native.elementType, native.shape.toLongArray(), ByteBuffer.wrap(native.data).order(ByteOrder.LITTLE_ENDIAN))

        /** Bytes per element of [type]; a string element has no fixed size (4 is its length prefix). */
        @JvmStatic fun elementSize(type: ElementType): Int = when (type) {
            ElementType.I8, ElementType.U8, ElementType.BOOL -> 1
            ElementType.F16, ElementType.BF16, ElementType.I16, ElementType.U16 -> 2
            ElementType.STRING -> 4
            ElementType.F32, ElementType.I32, ElementType.U32 -> 4
            ElementType.F64, ElementType.I64, ElementType.U64 -> 8
        }
    }
}
