package ai.openautoglm.bench

import ai.openautoglm.ElementType
import ai.openautoglm.DefaultEngineConfig
import ai.openautoglm.Engine
import ai.openautoglm.OpenAutoGLM
import ai.openautoglm.OptimizeLevel
import ai.openautoglm.Tensor
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.json.JSONArray
import org.json.JSONObject

/**
 * The Kotlin benchmark runner: the same protocol as the Rust runner (core/src/bin/openautoglm-bench.rs), so
 * `cargo xtask bench --vs kotlin` measures what the Kotlin layer adds over the Rust core.
 */
fun main(argv: Array<String>) {
    val args = argv.toList().chunked(2).associate { (k, v) -> k.removePrefix("--") to v }
    val threads = args["threads"]?.toInt() ?: 0
    val level = OptimizeLevel.valueOf(args["optimize"] ?: "O3")
    OpenAutoGLM.loadRuntime(args["ort"])

    val inputs = LinkedHashMap<String, Tensor>()
    val recipeFile = File(args.getValue("recipe"))
    val recipe = JSONArray(recipeFile.readText())
    for (i in 0 until recipe.length()) {
        val spec = recipe.getJSONObject(i)
        val shape = spec.getJSONArray("shape").let { s -> LongArray(s.length()) { s.getLong(it) } }
        if (spec.has("file")) {
            val type = mapOf("f32" to ElementType.F32, "i64" to ElementType.I64, "i32" to ElementType.I32).getValue(spec.getString("type"))
            val bytes = File(recipeFile.parentFile, spec.getString("file")).readBytes()
            inputs[spec.getString("name")] = Tensor.of(type, ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN), shape)
            continue
        }
        val values = recipeValues(spec, shape.fold(1L) { a, d -> a * d }.toInt())
        inputs[spec.getString("name")] = when (spec.getString("type")) {
            "f32" -> Tensor.of(FloatArray(values.size) { values[it].toFloat() }, shape)
            "i64" -> Tensor.of(LongArray(values.size) { values[it].toLong() }, shape)
            "i32" -> Tensor.of(IntArray(values.size) { values[it].toInt() }, shape)
            else -> error("unsupported recipe type ${spec.getString("type")}")
        }
    }

    var t = System.nanoTime()
    val engine = Engine.fromFile(args.getValue("model"), DefaultEngineConfig.copy(optimizeLevel = level, intraOpThreads = threads))
    val sessionMs = ms(t)
    engine.use { measure(args, sessionMs) { engine.inferBlocking(inputs) } }
}

/**
 * The timing protocol every runner shares (first run, warmup, then `runs` timed runs or `seconds` of them), written
 * as the JSON the Rust runner writes.
 */
internal fun measure(args: Map<String, String>, sessionMs: Double, infer: () -> Unit) {
    val runs = args["runs"]?.toInt() ?: 200
    val warmup = args["warmup"]?.toInt() ?: 10
    val seconds = args["seconds"]?.toDouble() ?: 0.0
    var t = System.nanoTime()
    infer()
    val firstMs = ms(t)
    val warm = DoubleArray(warmup) { t = System.nanoTime(); infer(); ms(t) }
    val samples = ArrayList<Double>(runs)
    val started = System.nanoTime()
    while (samples.size < runs || (System.nanoTime() - started) / 1e9 < seconds) {
        t = System.nanoTime(); infer(); samples.add(ms(t))
    }
    val sorted = samples.sorted()
    val metrics = JSONObject()
        .put("session_create_ms", sessionMs)
        .put("first_inference_ms", firstMs)
        .put("warmup_runs", warmup)
        .put("warmup_mean_ms", if (warm.isEmpty()) JSONObject.NULL else warm.average())
        .put("runs", samples.size)
        .put("mean_ms", samples.average())
        .put("p50_ms", sorted[(sorted.size - 1) / 2])
    File(args.getValue("out")).writeText(JSONObject().put("metrics", metrics).put("samples_ms", JSONArray(samples)).toString())
}

internal fun ms(since: Long) = (System.nanoTime() - since) / 1e6

/** `values` (repeated), `fill`, or `tones` (sum of sines), as in benchmarks/models.json. */
internal fun recipeValues(spec: JSONObject, count: Int): DoubleArray = when {
    spec.has("values") -> spec.getJSONArray("values").let { v -> DoubleArray(count) { v.getDouble(it % v.length()) } }
    spec.has("fill") -> DoubleArray(count) { spec.getDouble("fill") }
    spec.has("tones") -> {
        val tones = spec.getJSONArray("tones")
        val sr = spec.optDouble("sample_rate", 16000.0)
        DoubleArray(count) { i ->
            (0 until tones.length()).sumOf { k ->
                val tone = tones.getJSONArray(k)
                tone.getDouble(1) * kotlin.math.sin(2 * Math.PI * tone.getDouble(0) * i / sr)
            }
        }
    }
    else -> error("recipe input ${spec.getString("name")} needs values, fill or tones")
}
