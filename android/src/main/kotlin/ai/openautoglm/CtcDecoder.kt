package ai.openautoglm

/**
 * Reads a text recognizer's CTC output (PP-OCR and most line recognizers) with the model's character dictionary:
 * the best class at each step, repeats merged, blanks dropped. An OCR cascade's two models each have their own
 * dictionary (`cascade.json` names them); decode a result with the one of the path that produced it.
 * ```
 * val line = cascade.infer(mapOf("x" to image))
 * val text = (if (line.path == CascadePath.FAST) fastLabels else mainLabels).decode(line.outputs.values.first()).text
 * ```
 */
class CtcDecoder private constructor(private val native: NativeCtcDecoder) : AutoCloseable {
    /** The text of a `[1, steps, classes]` probability output and its mean confidence; a dictionary that does not fit the output's classes is [EngineException.InvalidConfig]. */
    @Throws(EngineException::class)
    fun decode(output: Tensor): CtcText = native {
        val view = output.buffer.duplicate().rewind() as java.nio.ByteBuffer
        val bytes = ByteArray(view.remaining()).also { view.get(it) }
        native.decode(NativeTensor("output", output.elementType, output.shape.toList(), bytes))
    }

    override fun close() = native.close()

    companion object {
        /** A dictionary file: one character per line (PaddleOCR's `*_dict.txt`) or a JSON list of strings. */
        @JvmStatic @Throws(EngineException::class)
        fun fromFile(path: String): CtcDecoder {
            OpenAutoGLM.checkNativeLibrary()
            return CtcDecoder(native { NativeCtcDecoder.fromFile(path) })
        }
    }
}
