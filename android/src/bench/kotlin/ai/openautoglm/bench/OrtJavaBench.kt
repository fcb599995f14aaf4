package ai.openautoglm.bench

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.json.JSONArray

/**
 * The ort-java peer: ONNX Runtime's own Java API (what an Android developer would use instead of this SDK), with
 * the same benchmark protocol as the Rust runner. xtask points it (onnxruntime.native.path) at the same
 * libonnxruntime.so our runners use, so only the binding layer differs.
 */
fun main(argv: Array<String>) {
    val args = argv.toList().chunked(2).associate { (k, v) -> k.removePrefix("--") to v }
    val env = OrtEnvironment.getEnvironment()
    val options = OrtSession.SessionOptions().apply {
        args["threads"]?.toInt()?.takeIf { it > 0 }?.let { setIntraOpNumThreads(it) }
        setOptimizationLevel(
            when (args["optimize"] ?: "O3") {
                "O0" -> OrtSession.SessionOptions.OptLevel.NO_OPT
                "O1" -> OrtSession.SessionOptions.OptLevel.BASIC_OPT
                "O2" -> OrtSession.SessionOptions.OptLevel.EXTENDED_OPT
                else -> OrtSession.SessionOptions.OptLevel.ALL_OPT
            },
        )
    }

    val recipeFile = File(args.getValue("recipe"))
    val recipe = JSONArray(recipeFile.readText())
    val inputs = LinkedHashMap<String, OnnxTensor>()
    for (i in 0 until recipe.length()) {
        val spec = recipe.getJSONObject(i)
        val shape = spec.getJSONArray("shape").let { s -> LongArray(s.length()) { s.getLong(it) } }
        val count = shape.fold(1L) { a, d -> a * d }.toInt()
        val type = spec.getString("type")
        val bytes = if (spec.has("file")) {
            File(recipeFile.parentFile, spec.getString("file")).readBytes()
        } else {
            val values = recipeValues(spec, count)
            val size = if (type == "i32" || type == "f32") 4 else 8
            ByteBuffer.allocate(count * size).order(ByteOrder.LITTLE_ENDIAN).also { b ->
                values.forEach { v -> when (type) { "f32" -> b.putFloat(v.toFloat()); "i64" -> b.putLong(v.toLong()); else -> b.putInt(v.toInt()) } }
            }.array()
        }
        // Direct buffers, as ORT's docs recommend for speed (heap buffers are copied on every call).
        val direct = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).put(bytes).also { it.flip() }
        inputs[spec.getString("name")] = when (type) {
            "f32" -> OnnxTensor.createTensor(env, direct.asFloatBuffer(), shape)
            "i64" -> OnnxTensor.createTensor(env, direct.asLongBuffer(), shape)
            else -> OnnxTensor.createTensor(env, direct.asIntBuffer(), shape)
        }
    }

    var t = System.nanoTime()
    val session = env.createSession(args.getValue("model"), options)
    val sessionMs = ms(t)
    // The job is a caller holding float32: where the model takes float16 (our FP16 variants do), convert at every run,
    // as our engine does inside run() and the python-ort peer does.
    val halves = session.inputInfo.filter { (_, info) ->
        (info.info as? ai.onnxruntime.TensorInfo)?.type == ai.onnxruntime.OnnxJavaType.FLOAT16
    }.keys
    fun feeds(): Map<String, OnnxTensor> = inputs.mapValues { (name, tensor) ->
        if (name !in halves) return@mapValues tensor
        val floats = tensor.floatBuffer
        val shorts = ByteBuffer.allocateDirect(floats.remaining() * 2).order(ByteOrder.nativeOrder()).asShortBuffer()
        while (floats.hasRemaining()) shorts.put(ai.onnxruntime.platform.Fp16Conversions.floatToFp16(floats.get()))
        shorts.flip()
        OnnxTensor.createTensor(env, shorts, tensor.info.shape, ai.onnxruntime.OnnxJavaType.FLOAT16)
    }
    // Outputs are read into JVM memory, as our Kotlin layer's are.
    fun infer() {
        val feeds = feeds()
        try {
            session.run(feeds).use { result -> result.forEach { (it.value as? OnnxTensor)?.byteBuffer } }
        } finally {
            feeds.forEach { (name, tensor) -> if (name in halves) tensor.close() }
        }
    }
    measure(args, sessionMs, { "allocated" }) { infer() }
    session.close()
}
