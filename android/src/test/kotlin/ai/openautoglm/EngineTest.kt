package ai.openautoglm

import java.io.File
import kotlin.math.abs
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking

class EngineTest {
    private fun matmul(engine: Engine, x: FloatArray, batch: Int): FloatArray =
        engine.inferBlocking(mapOf("x" to Tensor.of(x, batch, 4))).getValue("y").toFloatArray()

    /** y = x @ W + b computed here from the fixture's W and b. */
    private fun expectedMatmul(x: FloatArray, batch: Int): FloatArray {
        val e = Fixtures.expected.getJSONObject("matmul_dynamic")
        val w = e.getJSONArray("W"); val b = e.getJSONArray("b")
        return FloatArray(batch * 3) { i ->
            val row = i / 3; val col = i % 3
            var acc = b.getDouble(col).toFloat()
            for (k in 0 until 4) acc += x[row * 4 + k] * w.getDouble(k * 3 + col).toFloat()
            acc
        }
    }

    @Test fun introspectionKeepsSymbolicDimsAndMetadata() {
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { engine ->
            val input = engine.info.inputs.single()
            assertEquals("x", input.name)
            assertEquals(ElementType.F32, input.elementType)
            assertEquals(listOf(Dim.Symbolic("batch"), Dim.Fixed(4L)), input.shape)
            assertEquals("y", engine.info.outputs.single().name)
            val meta = engine.info.metadata
            assertEquals("openautoglm-fixtures", meta.producer)
            assertEquals(7L, meta.version)
            assertEquals("openautoglm tests", meta.custom["author"])
        }
    }

    @Test fun dynamicBatchGivesNumpyValues() {
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { engine ->
            for (batch in listOf(1, 3)) {
                val x = FloatArray(batch * 4) { it * 0.5f - 1f }
                val y = matmul(engine, x, batch)
                val want = expectedMatmul(x, batch)
                for (i in want.indices) assertEquals(want[i], y[i], 1e-5f)
            }
        }
    }

    @Test fun multipleInputsAndOutputsInModelOrder() {
        Engine.fromFile(Fixtures.model("multi_io")).use { engine ->
            val out = engine.inferBlocking(mapOf(
                "b" to Tensor.of(longArrayOf(1, 2, 3), 3),
                "a" to Tensor.of(floatArrayOf(-1f, 0.5f, 2f), 3),
            ))
            assertEquals(listOf("sum", "positive", "total"), out.keys.toList())
            assertContentEquals(floatArrayOf(0f, 2.5f, 5f), out.getValue("sum").toFloatArray())
            assertContentEquals(booleanArrayOf(false, true, true), out.getValue("positive").toBooleanArray())
            assertContentEquals(longArrayOf(6), out.getValue("total").toLongArray())
            assertEquals(0, out.getValue("total").shape.size)
        }
    }

    @Test fun fromBytesMatchesFromFile() {
        val bytes = File(Fixtures.model("matmul_dynamic")).readBytes()
        val x = floatArrayOf(1f, 2f, 3f, 4f)
        val a = Engine.fromBytes(bytes).use { matmul(it, x, 1) }
        val b = Engine.fromFile(Fixtures.model("matmul_dynamic")).use { matmul(it, x, 1) }
        assertContentEquals(b, a)
    }

    @Test fun configIsApplied() {
        val config = DefaultEngineConfig.copy(optimizeLevel = OptimizeLevel.O0, intraOpThreads = 1)
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            val x = floatArrayOf(1f, 0f, 0f, 0f)
            val want = expectedMatmul(x, 1)
            val got = matmul(engine, x, 1)
            for (k in want.indices) assertEquals(want[k], got[k], 1e-5f)
        }
    }

    @Test fun concurrentSuspendCallsGiveTheirOwnResults() = runBlocking<Unit> {
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { engine ->
            val results = (0 until 32).map { i ->
                async { i to engine.infer(mapOf("x" to Tensor.of(FloatArray(4) { i.toFloat() }, 1, 4))).getValue("y").toFloatArray() }
            }.awaitAll()
            for ((i, y) in results) {
                val want = expectedMatmul(FloatArray(4) { i.toFloat() }, 1)
                for (k in want.indices) assertEquals(want[k], y[k], 1e-4f * (1 + abs(want[k])))
            }
        }
    }

    @Test fun useClosesAndClosedEngineThrowsTypedError() {
        val engine = Engine.fromFile(Fixtures.model("matmul_dynamic"))
        engine.use { matmul(it, FloatArray(4), 1) }
        assertTrue(engine.isClosed)
        assertFailsWith<EngineException.EngineClosed> { matmul(engine, FloatArray(4), 1) }
    }

    @Test fun closeTwiceIsHarmless() {
        val engine = Engine.fromFile(Fixtures.model("matmul_dynamic"))
        engine.close()
        engine.close()
        assertTrue(engine.isClosed)
    }

    @Test fun warmupRunsTheModelAndFailsTypedWhenClosed() = runBlocking<Unit> {
        val engine = Engine.fromFile(Fixtures.model("multi_io"))
        assertEquals(3, engine.warmup(3).size)
        engine.close()
        assertFailsWith<EngineException.EngineClosed> { engine.warmup() }
        Unit
    }

    @Test fun interOpThreadsAndSpinningAreAccepted() {
        val config = DefaultEngineConfig.copy(intraOpThreads = 1, interOpThreads = 2, spinning = false)
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            val x = floatArrayOf(1f, 2f, 3f, 4f)
            val want = expectedMatmul(x, 1)
            val got = matmul(engine, x, 1)
            for (k in want.indices) assertEquals(want[k], got[k], 1e-5f)
        }
    }

    @Test fun unavailableAcceleratorsAreSkippedWithAReasonAndTheCpuRuns() {
        val nnapi = Accelerator.Nnapi(fp16 = true, nchw = false, cpuDisabled = false, cpuOnly = false)
        val coreml = Accelerator.CoreMl(CoreMlComputeUnits.ALL, CoreMlModelFormat.ML_PROGRAM, staticShapes = true, subgraphs = false, cacheDir = null)
        val config = DefaultEngineConfig.copy(accelerators = listOf(nnapi, coreml, Accelerator.Xnnpack(0), Accelerator.Cpu))
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            assertEquals(listOf("CPUExecutionProvider"), engine.accelerators.active)
            assertEquals(
                listOf("NnapiExecutionProvider", "CoreMLExecutionProvider", "XnnpackExecutionProvider"),
                engine.accelerators.skipped.map { it.provider },
            )
            assertTrue(engine.accelerators.skipped.all { "CPUExecutionProvider" in it.reason })
            val x = floatArrayOf(1f, 2f, 3f, 4f)
            val want = expectedMatmul(x, 1)
            val got = matmul(engine, x, 1)
            for (k in want.indices) assertEquals(want[k], got[k], 1e-5f)
        }
    }

    @Test fun strictModeRefusesAnUnavailableAccelerator() {
        val config = DefaultEngineConfig.copy(accelerators = listOf(Accelerator.Nnapi(false, false, true, false)), strict = true)
        val e = assertFailsWith<EngineException.InvalidConfig> { Engine.fromFile(Fixtures.model("matmul_dynamic"), config) }
        assertTrue("NnapiExecutionProvider" in e.reason, e.reason)
    }

    @Test fun nativeLibraryVersionMatchesBindings() {
        OpenAutoGLM.checkNativeLibrary()
        assertEquals(OpenAutoGLM.VERSION, nativeVersion())
    }

    /** A library of another version is the typed error naming both versions (a real second build is not made here). */
    @Test fun aNativeLibraryOfAnotherVersionIsNativeLibraryUnavailable() {
        assertEquals(null, OpenAutoGLM.versionMismatch(OpenAutoGLM.VERSION))
        val mismatch = OpenAutoGLM.versionMismatch("0.0.1-other", layer = "0.9.0")
        val message = mismatch!!.message!!
        assertTrue("0.0.1-other" in message && "0.9.0" in message, message)
    }

    @Test fun warmupTakesTheSizesOrTheInputsTheAppWillUse() = runBlocking<Unit> {
        Engine.fromFile(Fixtures.model("pairs")).use { pairs ->
            val refused = assertFailsWith<EngineException> { pairs.warmup() }
            // The hint is the same in every language and names no language's method.
            assertTrue(refused.message!!.contains("warm up with the sizes the app uses"), refused.toString())
            assertTrue(!refused.message!!.contains("warmup_"), refused.toString())
            assertEquals(2, pairs.warmupDims(mapOf("n" to 64L), runs = 2).size)
            assertEquals(1, pairs.warmupWith(mapOf("x" to Tensor.of(FloatArray(4), 4))).size)
            assertFailsWith<EngineException.InvalidConfig> { pairs.warmupDims(mapOf("time" to 3L)) }
            assertFailsWith<EngineException.InvalidConfig> { pairs.warmupDims(mapOf("n" to -1L)) }
        }
    }

    /** Kotlin sees Int and Long everywhere (no UInt/ULong): each of these compiles only because of that. */
    @Test fun numbersInTheApiAreIntAndLong() {
        val threads: Int = 1
        val batch: Long = 2
        val config = DefaultEngineConfig.copy(
            intraOpThreads = threads, interOpThreads = threads, memoryLimitMb = 512, concurrency = threads,
            accelerators = listOf(Accelerator.Xnnpack(threads), Accelerator.Cpu),
            shapeBuckets = listOf(ShapeBucket(mapOf("batch" to batch))),
        )
        Engine.fromFile(Fixtures.model("matmul_dynamic"), config).use { engine ->
            val fixed: Long = (engine.info.inputs[0].shape[1] as Dim.Fixed).size
            assertEquals(4L, fixed)
            engine.warmupBlocking(threads)
            val bucketRuns: List<Long> = engine.shapeBucketStats.bucketRuns
            val dynamicRuns: Long = engine.shapeBucketStats.dynamicRuns
            assertEquals(listOf(1L), bucketRuns)
            assertEquals(1L, dynamicRuns)
            val preempted: Long = engine.preemptedRuns
            assertEquals(0L, preempted)
        }
        // A negative count is a typed error, not a wrapped-around huge number.
        val e = assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromFile(Fixtures.model("matmul_dynamic"), DefaultEngineConfig.copy(intraOpThreads = -1))
        }
        assertTrue("intra_op_threads" in e.reason, e.reason)
    }
}
