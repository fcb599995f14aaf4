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
 * The Kotlin benchmark runner: the same protocol as the Rust runner (benchmarks/runner/src/main.rs), so
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
    engine.use {
        // What an app running a small model many times a second does: outputs into buffers it keeps, sized by the
        // first (measured) run, as an app knows its shapes. String outputs have no fixed size: allocated.
        var into: Map<String, ByteBuffer>? = null
        // `OPENAUTOGLM_BENCH_OUTPUTS=allocated cargo xtask bench ...` measures the allocating call instead.
        var first = System.getenv("OPENAUTOGLM_BENCH_OUTPUTS") != "allocated"
        measure(args, sessionMs, { if (into != null) "caller buffers" else "allocated" }) {
            val buffers = into
            when {
                buffers != null -> engine.inferIntoBlocking(inputs, buffers)
                first -> into = callerBuffers(engine.inferBlocking(inputs)).also { first = false }
                else -> engine.inferBlocking(inputs)
            }
        }
    }
}

/**
 * A direct buffer per output, sized from one run on the benchmark's inputs (an app knows its shapes the same way),
 * or null when an output is a string tensor.
 */
private fun callerBuffers(outputs: Map<String, Tensor>): Map<String, ByteBuffer>? {
    val buffers = LinkedHashMap<String, ByteBuffer>()
    for ((name, tensor) in outputs) {
        if (tensor.elementType == ElementType.STRING) return null
        buffers[name] = ByteBuffer.allocateDirect(tensor.byteSize).order(ByteOrder.LITTLE_ENDIAN)
    }
    return buffers
}

/**
 * The timing protocol every runner shares (first run, warmup, then `runs` timed runs or `seconds` of them), written
 * as the JSON the Rust runner writes.
 */
internal fun measure(args: Map<String, String>, sessionMs: Double, outputs: () -> String, infer: () -> Unit) {
    val runs = args["runs"]?.toInt() ?: 200
    val seconds = args["seconds"]?.toDouble() ?: 0.0
    val intervalMs = args["interval-ms"]?.toDouble() ?: 0.0
    val rssAfterLoadMb = rssMb()
    var t = System.nanoTime()
    infer()
    val firstMs = ms(t)
    val coldStartMs = System.getenv("OPENAUTOGLM_SPAWNED_UNIX_NS")?.toLongOrNull()?.let { spawned ->
        val now = java.time.Instant.now()
        ((now.epochSecond * 1_000_000_000L + now.nano) - spawned) / 1e6
    }
    // JVM code is measured at steady state: the warmup asked for, and at least JIT_WARMUP_SECONDS of calls, so the
    // JIT has compiled the call path (the count done is reported as warmup_runs).
    val warmStarted = System.nanoTime()
    val (warm, _) = timedCalls(intervalMs, { it.size >= (args["warmup"]?.toInt() ?: 10) && (System.nanoTime() - warmStarted) / 1e9 >= JIT_WARMUP_SECONDS }, infer)
    val started = System.nanoTime()
    val (samples, cpuMsPerRun) = timedCalls(intervalMs, { it.size >= runs && (System.nanoTime() - started) / 1e9 >= seconds }, infer)
    // Heap allocated per call at steady state, on this thread, over a loop that records nothing itself.
    val threads = java.lang.management.ManagementFactory.getThreadMXBean() as com.sun.management.ThreadMXBean
    val id = Thread.currentThread().id
    val before = threads.getThreadAllocatedBytes(id)
    var allocRuns = 0
    val allocStarted = System.nanoTime()
    while (allocRuns < ALLOC_RUNS && (allocRuns < 10 || (System.nanoTime() - allocStarted) / 1e9 < ALLOC_SECONDS)) {
        infer()
        allocRuns++
    }
    val allocPerRun = (threads.getThreadAllocatedBytes(id) - before).toDouble() / allocRuns
    val sorted = samples.sorted()
    val metrics = JSONObject()
        .put("session_create_ms", sessionMs)
        .put("first_inference_ms", firstMs)
        .put("cold_start_ms", coldStartMs ?: JSONObject.NULL)
        .put("rss_after_load_mb", rssAfterLoadMb ?: JSONObject.NULL)
        .put("cpu_ms_per_run", cpuMsPerRun)
        .put("interval_ms", if (intervalMs > 0) intervalMs else JSONObject.NULL)
        .put("warmup_runs", warm.size)
        .put("warmup_mean_ms", if (warm.isEmpty()) JSONObject.NULL else warm.average())
        .put("alloc_bytes_per_run", allocPerRun)
        .put("runs", samples.size)
        .put("mean_ms", samples.average())
        .put("p50_ms", sorted[(sorted.size - 1) / 2])
    File(args.getValue("out")).writeText(
        JSONObject().put("metrics", metrics).put("outputs", outputs()).put("samples_ms", JSONArray(samples)).toString(),
    )
}

/**
 * Calls [infer] until [done] says stop, [intervalMs] apart (start to start, the first one interval in; back to back
 * when 0), timing each call
 * alone. Returns the samples and the process CPU time (every thread) per call in ms.
 */
private fun timedCalls(intervalMs: Double, done: (List<Double>) -> Boolean, infer: () -> Unit): Pair<List<Double>, Double> {
    val samples = ArrayList<Double>()
    val cpuBefore = processCpuNanos()
    val started = System.nanoTime()
    while (!done(samples)) {
        if (intervalMs > 0) {
            val wait = started + (intervalMs * 1e6 * (samples.size + 1)).toLong() - System.nanoTime()
            if (wait > 0) java.util.concurrent.locks.LockSupport.parkNanos(wait)
        }
        val t = System.nanoTime()
        infer()
        samples.add(ms(t))
    }
    return samples to (processCpuNanos() - cpuBefore) / 1e6 / maxOf(samples.size, 1)
}

/**
 * CPU time of every thread of this process, ONNX Runtime's native workers included, in ns: the sum of the
 * scheduler's per-thread counters (Linux), as precise as the Rust runner's getrusage. The JVM's own
 * getProcessCpuTime counts 10 ms ticks, too coarse for a run of small inferences.
 */
private fun processCpuNanos(): Long {
    val tasks = File("/proc/self/task").listFiles()
    if (tasks != null) {
        return tasks.sumOf { task ->
            runCatching { File(task, "schedstat").readText().trim().split(' ')[0].toLong() }.getOrDefault(0L)
        }
    }
    val os = java.lang.management.ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean
    return os.processCpuTime
}

/** Resident memory now (Linux: /proc/self/status VmRSS), as the Rust runner reads it. */
private fun rssMb(): Double? = runCatching {
    File("/proc/self/status").readLines().first { it.startsWith("VmRSS:") }.split(Regex("\\s+"))[1].toDouble() / 1024
}.getOrNull()

/** The least warmup a JVM runner does before measuring (JIT compilation of the call path). */
private const val JIT_WARMUP_SECONDS = 2.0

/** Calls measured for the allocation per call: this many, or as many as fit in ALLOC_SECONDS (at least 10). */
private const val ALLOC_RUNS = 2000
private const val ALLOC_SECONDS = 1.0

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
