package ai.openautoglm

import java.io.File
import java.nio.file.Files
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

/**
 * A plugin execution provider from Kotlin: Intel's OpenVINO plugin (PyPI `onnxruntime-ep-openvino`). It offers
 * devices only on an Intel CPU, so `cargo xtask test` runs this class in its own JVM under `qemu-x86_64 -cpu
 * Skylake-Client` on other hosts (the other classes run natively, where it offers none).
 */
class PluginTest {
    private val temp: File = Files.createTempDirectory("openautoglm-plugin").toFile()
    private val plugin: String = System.getenv("OPENAUTOGLM_OPENVINO_PLUGIN")
        ?: error("OPENAUTOGLM_OPENVINO_PLUGIN is not set: run the tests with `cargo xtask test`")
    private val openVino = Accelerators.openVino(plugin)

    @AfterTest fun cleanUp() {
        temp.deleteRecursively()
    }

    private fun config(vararg accelerators: Accelerator) = DefaultEngineConfig.copy(accelerators = accelerators.toList())

    private fun run(engine: Engine, model: String, x: FloatArray): FloatArray {
        val shape = if (model == "matmul_dynamic") intArrayOf(x.size / 4, 4) else intArrayOf(1, 4)
        return engine.inferBlocking(mapOf("x" to Tensor.of(x, *shape))).getValue("y").toFloatArray()
    }

    private fun cosine(a: FloatArray, b: FloatArray): Double {
        assertEquals(a.size, b.size)
        var dot = 0.0; var na = 0.0; var nb = 0.0
        for (i in a.indices) { dot += a[i].toDouble() * b[i]; na += a[i].toDouble() * a[i]; nb += b[i].toDouble() * b[i] }
        return dot / maxOf(kotlin.math.sqrt(na * nb), Double.MIN_VALUE)
    }

    /** Runs [model] on OpenVINO and on the CPU provider with the same [inputs]; returns each one's [output]. */
    private fun onBoth(model: String, inputs: Map<String, Tensor>, output: String): Triple<AcceleratorReport, FloatArray, FloatArray> {
        val (report, ov) = Engine.fromFile(Fixtures.realModel(model), config(openVino)).use {
            it.accelerators to it.inferBlocking(inputs).getValue(output).toFloatArray()
        }
        val cpu = Engine.fromFile(Fixtures.realModel(model), config(Accelerator.Cpu)).use {
            it.inferBlocking(inputs).getValue(output).toFloatArray()
        }
        return Triple(report, ov, cpu)
    }

    @Test fun realModelsOnOpenVinoMatchTheCpuProvider() {
        val ids = Fixtures.expected.getJSONObject("minilm-l6-int8").getJSONArray("input_ids").let { a -> LongArray(a.length()) { a.getLong(it) } }
        val text = mapOf(
            "input_ids" to Tensor.of(ids, 1, ids.size),
            "attention_mask" to Tensor.of(LongArray(ids.size) { 1 }, 1, ids.size),
            "token_type_ids" to Tensor.of(LongArray(ids.size), 1, ids.size),
        )
        val (miniLm, ovText, cpuText) = onBoth("minilm-l6-int8", text, "last_hidden_state")
        assertEquals(Accelerators.OPENVINO, miniLm.active.first())
        assertTrue(cosine(ovText, cpuText) >= 0.99, "MiniLM cosine ${cosine(ovText, cpuText)}")
        val image = mapOf("images" to Tensor.of(FloatArray(3 * 320 * 320) { ((it.toLong() * 7919) % 255) / 255f }, 1, 3, 320, 320))
        val (yolo, ovBoxes, cpuBoxes) = onBoth("yolov8n-320", image, "output0")
        assertEquals(Accelerators.OPENVINO, yolo.active.first())
        assertTrue(cosine(ovBoxes, cpuBoxes) >= 0.99, "YOLOv8n cosine ${cosine(ovBoxes, cpuBoxes)}")
        // Silero VAD: OpenVINO takes it and cannot compile its dynamic-rank branches; the CPU runs it, and says why.
        val audio = mapOf(
            "input" to Tensor.of(FloatArray(512) { kotlin.math.sin(it * 0.05f) * 0.3f }, 1, 512),
            "state" to Tensor.of(FloatArray(2 * 128), 2, 1, 128),
            "sr" to Tensor.of(longArrayOf(16000)),
        )
        val (vad, ovSpeech, cpuSpeech) = onBoth("silero-vad", audio, "output")
        assertEquals(listOf("CPUExecutionProvider"), vad.active)
        assertTrue("could not compile" in vad.skipped.single { it.provider == Accelerators.OPENVINO }.reason)
        assertContentEquals(cpuSpeech, ovSpeech)
    }

    @Test fun aMissingPluginLibraryIsATypedError() {
        val missing = Accelerators.openVino("/no/such/libonnxruntime_providers_openvino_plugin.so")
        val e = assertFailsWith<EngineException.AcceleratorUnavailable> {
            Engine.fromFile(Fixtures.model("matmul_dynamic"), config(missing))
        }
        assertEquals(Accelerators.OPENVINO, e.provider)
        assertTrue("/no/such" in e.reason, e.reason)
    }

    @Test fun openVinoRunsTheModelAndPlacementShowsWhatFellBackToTheCpu() {
        val x = floatArrayOf(0.5f, -1f, 2f, 4f)
        val want = Engine.fromFile(Fixtures.model("matmul_dynamic")).use { run(it, "matmul_dynamic", x) }
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config(openVino)).use { engine ->
            assertEquals(listOf(Accelerators.OPENVINO, "CPUExecutionProvider"), engine.accelerators.active)
            val got = run(engine, "matmul_dynamic", x)
            want.indices.forEach { assertEquals(want[it], got[it], 1e-4f) }
        }
        val withPlacement = config(openVino).copy(reportPlacement = true)
        Engine.fromFile(Fixtures.model("accelerator_fallback"), withPlacement).use { engine ->
            val providers = engine.placement!!.providers.associateBy { it.provider }
            assertTrue(providers.getValue(Accelerators.OPENVINO).nodes >= 1, "$providers")
            assertTrue(providers.getValue("CPUExecutionProvider").nodes >= 1, "Det runs on the CPU: $providers")
        }
    }

    @Test fun strictModeRefusesPartialPlacementAndAnAbsentDevice() {
        val strict = config(openVino).copy(strict = true)
        val partial = assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromFile(Fixtures.model("accelerator_fallback"), strict)
        }
        assertTrue("strict mode" in partial.reason, partial.reason)
        Engine.fromFile(Fixtures.model("matmul_dynamic"), strict).use {
            assertEquals(Accelerators.OPENVINO, it.accelerators.active.first())
        }
        val npu = config(Accelerators.openVino(plugin, DeviceKind.NPU))
        val absent = assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromFile(Fixtures.model("matmul_dynamic"), npu.copy(strict = true))
        }
        assertTrue("no Npu device" in absent.reason, absent.reason)
        // Not strict: skipped with the reason, and the CPU runs the model.
        Engine.fromFile(Fixtures.model("matmul_dynamic"), npu).use { engine ->
            assertEquals(listOf("CPUExecutionProvider"), engine.accelerators.active)
            assertTrue("no Npu device" in engine.accelerators.skipped.single().reason)
        }
    }

    @Test fun openVinoCompilesIntoTheEngineCache() {
        val cached = config(openVino).copy(cacheDir = File(temp, "cache").path)
        val x = floatArrayOf(1f, 2f, 3f, 4f)
        val first = Engine.fromFile(Fixtures.model("matmul_dynamic"), cached).use { engine ->
            assertEquals(CacheOutcome.MISS, engine.compileCache)
            run(engine, "matmul_dynamic", x)
        }
        assertTrue(File(temp, "cache/openvino").listFiles().orEmpty().isNotEmpty(), "OpenVINO's compiled blob")
        Engine.fromFile(Fixtures.model("matmul_dynamic"), cached).use { engine ->
            assertEquals(CacheOutcome.HIT, engine.compileCache)
            assertEquals(Accelerators.OPENVINO, engine.accelerators.active.first())
            assertContentEquals(first, run(engine, "matmul_dynamic", x))
        }
    }

    @Test fun verdictsHoldOnlyOnThePluginsOwnClass() {
        val openVinoClass = OpenAutoGLM.numericsClass(openVino)
        assertEquals("linux-x86_64-openvino", openVinoClass)
        val cpuClass = OpenAutoGLM.numericsClass(Accelerator.Cpu)
        // FP16 passed on OpenVINO only, INT8 on the CPU only: each runs only where it passed.
        val bundle = File(temp, "bundle").apply { mkdirs() }
        for (file in listOf("fp32.onnx", "fp16.onnx", "int8-qdq.onnx")) {
            File(Fixtures.model("matmul_dynamic")).copyTo(File(bundle, file))
        }
        fun verdict(passed: Boolean) = """{"passed": $passed, "set": "test", "inputs": 20, "worst_score": 0.9, "threshold": 0.99}"""
        File(bundle, "bundle.json").writeText(
            """{"format": 1, "model": "matmul", "variants": [
              {"precision": "fp32", "file": "fp32.onnx", "accurate": true},
              {"precision": "fp16", "file": "fp16.onnx", "accurate": false,
               "verdicts": {"$cpuClass": ${verdict(false)}, "$openVinoClass": ${verdict(true)}}},
              {"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": true,
               "verdicts": {"$cpuClass": ${verdict(true)}, "$openVinoClass": ${verdict(false)}}}]}""",
        )
        Engine.fromBundle(bundle, config(openVino).copy(precision = Precision.FP16)).use {
            assertEquals("fp16.onnx", it.precision!!.file)
        }
        val refused = assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromBundle(bundle, config(openVino).copy(precision = Precision.INT8))
        }
        assertTrue(openVinoClass in refused.reason, refused.reason)
        Engine.fromBundle(bundle, config(Accelerator.Cpu).copy(precision = Precision.INT8)).use {
            assertEquals("int8-qdq.onnx", it.precision!!.file)
        }
        Engine.fromBundle(bundle, config(openVino)).use { assertEquals(Precision.FP32, it.precision!!.precision) }
    }
}
