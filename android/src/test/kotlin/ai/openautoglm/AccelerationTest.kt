package ai.openautoglm

import java.io.File
import java.nio.file.Files
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotEquals
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** Placement reports, precision and bundles, float16 I/O, the compile cache and shape buckets, from Kotlin. */
class AccelerationTest {
    private val temp: File = Files.createTempDirectory("openautoglm-kotlin").toFile()

    @AfterTest fun cleanUp() {
        temp.deleteRecursively()
    }

    private fun matmul(engine: Engine, x: FloatArray): FloatArray =
        engine.inferBlocking(mapOf("x" to Tensor.of(x, (x.size / 4), 4))).getValue("y").toFloatArray()

    @Test fun placementIsReportedWhenAsked() {
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertNull(it.placement) }
        Engine.fromFile(Fixtures.model("matmul_dynamic"), DefaultEngineConfig.copy(reportPlacement = true)).use { engine ->
            val placement = engine.placement!!
            val cpu = placement.providers.single()
            assertEquals("CPUExecutionProvider", cpu.provider)
            assertEquals(1, cpu.partitions)
            assertTrue(cpu.nodes >= 1)
            assertTrue(placement.warnings.isEmpty())
        }
    }

    @Test fun theDefaultIsTheSdksChoiceAndNeverNnapi() {
        assertEquals(listOf<Accelerator>(Accelerator.Auto), DefaultEngineConfig.accelerators)
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { engine ->
            // On a desktop JVM Auto is the CPU; what it resolved to is reported, never "auto" or NNAPI.
            val tried = engine.accelerators.active + engine.accelerators.skipped.map { it.provider }
            assertEquals("CPUExecutionProvider", engine.accelerators.active.last())
            assertTrue(tried.none { it == "auto" || it == "NnapiExecutionProvider" }, "$tried")
            val x = floatArrayOf(1f, 0f, -1f, 0.5f)
            val cpu = DefaultEngineConfig.copy(accelerators = listOf(Accelerator.Cpu))
            Engine.fromFile(Fixtures.model("matmul_dynamic"), cpu).use { assertContentEquals(matmul(it, x), matmul(engine, x)) }
        }
    }

    @Test fun float16ModelsTakeAndGiveFloat32() {
        Engine.fromFile(Fixtures.model("identity_f16")).use { engine ->
            val x = floatArrayOf(1.5f, -2f, 0.25f, 65504f, 0f, -0.5f)
            val out = engine.inferBlocking(mapOf("x" to Tensor.of(x, 2, 3))).getValue("y")
            assertEquals(ElementType.F32, out.elementType)
            assertContentEquals(x, out.toFloatArray())
            val wrong = assertFailsWith<EngineException.InvalidInput> {
                engine.inferBlocking(mapOf("x" to Tensor.of(intArrayOf(1, 2, 3, 4, 5, 6), 2, 3)))
            }
            assertEquals("x", wrong.name)
        }
    }

    @Test fun compileCacheMissesThenHitsAndRebuildsDamage() {
        val config = DefaultEngineConfig.copy(cacheDir = temp.path)
        val x = floatArrayOf(1f, 2f, 3f, 4f)
        val first = Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            assertEquals(CacheOutcome.MISS, engine.compileCache)
            matmul(engine, x)
        }
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            assertEquals(CacheOutcome.HIT, engine.compileCache)
            assertContentEquals(first, matmul(engine, x))
        }
        val model = temp.listFiles()!!.single { it.isDirectory && !it.name.startsWith(".") }.resolve("model.onnx")
        model.writeBytes(model.readBytes().also { it[it.size / 2] = (it[it.size / 2].toInt() xor 0x55).toByte() })
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            assertEquals(CacheOutcome.REBUILT, engine.compileCache)
            assertContentEquals(first, matmul(engine, x))
        }
    }

    @Test fun shapeBucketsRouteByShape() {
        val config = DefaultEngineConfig.copy(shapeBuckets = listOf(ShapeBucket(mapOf("batch" to 2L))))
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            val two = FloatArray(8) { it * 0.5f }
            val three = FloatArray(12) { it * 0.25f }
            Engine.fromFile(Fixtures.model("matmul_dynamic")).use { dynamic ->
                assertContentEquals(matmul(dynamic, two), matmul(engine, two))
                assertContentEquals(matmul(dynamic, three), matmul(engine, three))
            }
            assertEquals(listOf(1L), engine.shapeBucketStats.bucketRuns)
            assertEquals(1L, engine.shapeBucketStats.dynamicRuns)
        }
        val bad = DefaultEngineConfig.copy(shapeBuckets = listOf(ShapeBucket(mapOf("sequence" to 8L))))
        val error = assertFailsWith<EngineException.InvalidConfig> { Engine.fromFile(Fixtures.model("matmul_dynamic"), bad) }
        assertTrue("sequence" in error.reason, error.reason)
    }

    @Test fun realBundleChoosesByPrecisionAndAccuracy() {
        val bundle = Fixtures.bundle("yolov8n-320")
        val image = FloatArray(3 * 320 * 320) { (it % 320) / 320f }
        fun run(precision: Precision): Pair<PrecisionChoice, FloatArray> =
            Engine.fromBundle(bundle, DefaultEngineConfig.copy(precision = precision)).use { engine ->
                val out = engine.inferBlocking(mapOf("images" to Tensor.of(image, 1, 3, 320, 320))).values.first()
                engine.precision!! to out.toFloatArray()
            }
        val (fp32Choice, fp32) = run(Precision.FP32)
        assertEquals("fp32.onnx", fp32Choice.file)
        val (fp16Choice, fp16) = run(Precision.FP16)
        assertEquals("fp16.onnx", fp16Choice.file)
        assertEquals(fp32.size, fp16.size)
        // Explicit INT8 runs an INT8 variant that passed on this numerics class's test set, as the bundle records
        // it (the whole-graph QDQ one fails), or is refused; Auto runs only passing variants.
        val here = OpenAutoGLM.numericsClass()
        val variants = org.json.JSONObject(File(bundle, "bundle.json").readText()).getJSONArray("variants")
        val passing = (0 until variants.length()).map { variants.getJSONObject(it) }.filter { v ->
            v.getString("precision") == "fp32" ||
                v.optJSONObject("verdicts")?.optJSONObject(here)?.optBoolean("passed") == true
        }.map { it.getString("file") }
        assertTrue("int8-qdq.onnx" !in passing, "$passing")
        if (passing.any { it.startsWith("int8") }) {
            val (int8Choice, _) = run(Precision.INT8)
            assertTrue(int8Choice.file in passing && int8Choice.file.startsWith("int8"), "$int8Choice")
        } else {
            assertFailsWith<EngineException.InvalidConfig> { run(Precision.INT8) }
        }
        val auto = run(Precision.AUTO).first
        assertTrue(auto.file in passing, "$auto")
        assertTrue(OpenAutoGLM.deviceClass() in auto.reason, auto.reason)
    }

    @Test fun autoFollowsMeasurementsAndNeverPicksAFailedVariant() {
        for (file in listOf("fp32.onnx", "int8-qdq.onnx", "int8-mixed.onnx")) {
            Files.copy(File(Fixtures.model("identity_f32")).toPath(), File(temp, file).toPath())
        }
        val here = OpenAutoGLM.deviceClass(Accelerator.Cpu)
        fun measured(ms: Double) = """{"$here": {"mean_ms": $ms}}"""
        File(temp, "bundle.json").writeText(
            """{"format": 1, "variants": [
              {"precision": "fp32", "file": "fp32.onnx", "accurate": true, "measured": ${measured(4.0)}},
              {"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": false, "measured": ${measured(1.0)}},
              {"precision": "int8-mixed", "file": "int8-mixed.onnx", "accurate": true, "measured": ${measured(2.0)}}]}"""
        )
        Engine.fromBundle(temp).use { engine ->
            val choice = engine.precision!!
            assertEquals("int8-mixed.onnx", choice.file, choice.reason)
            assertEquals(Precision.INT8, choice.precision)
            assertTrue(here in choice.reason && "fp32 2.00x" in choice.reason, choice.reason)
        }
        // Make FP32 the fastest measured: it wins; the failed variant stays out even though it is faster still.
        File(temp, "bundle.json").writeText(File(temp, "bundle.json").readText().replace("4.0", "1.5"))
        Engine.fromBundle(temp).use { assertEquals("fp32.onnx", it.precision!!.file) }
    }

    /** FP16 judged on two numerics classes with opposite verdicts: the one this engine computes on decides. */
    @Test fun aVerdictHoldsOnlyOnTheNumericsClassItWasTakenOn() {
        for ((name, file) in listOf("identity_f32" to "fp32.onnx", "identity_f16" to "fp16.onnx")) {
            Files.copy(File(Fixtures.model(name)).toPath(), File(temp, file).toPath())
        }
        val here = OpenAutoGLM.numericsClass()
        assertTrue(here.startsWith("linux-") && here.endsWith("-cpu"), here)
        val elsewhere = if ("aarch64" in here) "linux-x86_64-cpu" else "linux-aarch64-cpu"
        fun judged(passesOn: String, failsOn: String) = File(temp, "bundle.json").writeText(
            """{"format": 1, "model": "identity", "variants": [
              {"precision": "fp32", "file": "fp32.onnx", "accurate": true},
              {"precision": "fp16", "file": "fp16.onnx", "accurate": true, "verdicts": {
                "$passesOn": {"passed": true, "set": "test", "inputs": 24, "worst_score": 0.9995, "threshold": 0.99},
                "$failsOn": {"passed": false, "set": "test", "inputs": 24, "worst_score": 0.41, "threshold": 0.99}}}]}"""
        )
        judged(passesOn = elsewhere, failsOn = here)
        val refused = assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromBundle(temp, DefaultEngineConfig.copy(precision = Precision.FP16))
        }
        assertTrue(here in refused.reason && "0.4100" in refused.reason, refused.reason)
        Engine.fromBundle(temp).use { assertEquals("fp32.onnx", it.precision!!.file) }
        judged(passesOn = here, failsOn = elsewhere)
        Engine.fromBundle(temp, DefaultEngineConfig.copy(precision = Precision.FP16)).use { engine ->
            assertEquals("fp16.onnx", engine.precision!!.file)
            assertEquals("requested", engine.precision!!.reason)
        }
    }

    @Test fun bundleErrorsAreTyped() {
        assertFailsWith<EngineException.ModelNotFound> { Engine.fromBundle(File(temp, "none")) }
        File(temp, "bundle.json").writeText("""{"format": 1, "variants": [{"precision": "fp32", "file": "fp32.onnx"}]}""")
        Files.copy(File(Fixtures.model("identity_f32")).toPath(), File(temp, "fp32.onnx").toPath())
        val error = assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromBundle(temp, DefaultEngineConfig.copy(precision = Precision.FP16))
        }
        assertTrue("FP16" in error.reason || "Fp16" in error.reason, error.reason)
        assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromFile(Fixtures.model("identity_f32"), DefaultEngineConfig.copy(precision = Precision.INT8))
        }
    }
}
