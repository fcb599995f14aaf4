package ai.openautoglm

import java.io.File
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking

/** Speculative generation and calibrated cascades from Kotlin. */
class AdaptiveTest {
    private fun tiny() = Llm.open(Fixtures.llm("smollm2-tiny"), DefaultEngineConfig.copy(intraOpThreads = 1))

    private suspend fun run(llm: Llm, prompt: String, options: GenerateOptions): Pair<String, GenerationMetrics> {
        var metrics: GenerationMetrics? = null
        val text = llm.generate(prompt, options) { m, _ -> metrics = m }.toList().joinToString("")
        return text to metrics!!
    }

    @Test fun aDraftModelKeepsTheModelsOwnGreedyAnswer() = runBlocking<Unit> {
        tiny().use { target -> tiny().use { draft -> target.withDraft(draft).use { drafted ->
            assertEquals("fp32.onnx", drafted.draftFile)
            assertEquals(null, target.draftFile)
            val (plain, plainMetrics) = run(target, "Once upon a time", GenerateOptions(maxTokens = 24, minTokens = 24))
            val (spec, metrics) = run(drafted, "Once upon a time", GenerateOptions(maxTokens = 24, minTokens = 24, maxDraftTokens = 4))
            assertEquals(plain, spec)
            assertEquals(0, plainMetrics.draftTokens)
            assertTrue(metrics.draftTokens > 0)
            assertEquals(metrics.draftTokens, metrics.acceptedDraftTokens, "a model agrees with itself")
            assertTrue(metrics.decodePasses < plainMetrics.decodePasses, "$metrics")
            // The default options speculate once a draft is attached; the same answer still.
            val (byDefault, defaultMetrics) = run(drafted, "Once upon a time", GenerateOptions(maxTokens = 24, minTokens = 24))
            assertEquals(plain, byDefault)
            assertTrue(defaultMetrics.draftTokens > 0, "$defaultMetrics")
        } } }
    }

    @Test fun promptLookupNeedsNoDraftAndBadOptionsAreTyped() = runBlocking<Unit> {
        tiny().use { llm ->
            val prompt = "one two three four one two three four one two"
            val (plain, _) = run(llm, prompt, GenerateOptions(maxTokens = 32, minTokens = 32))
            val (spec, metrics) = run(llm, prompt, GenerateOptions(maxTokens = 32, minTokens = 32, maxDraftTokens = 6))
            assertEquals(plain, spec)
            assertTrue(metrics.draftTokens > 0)
            assertFailsWith<EngineException.InvalidConfig> {
                llm.generate("Hi", GenerateOptions(maxDraftTokens = 99)).toList()
            }
        }
    }

    @Test fun aManifestMakesTheCascadeItDescribes() = runBlocking<Unit> {
        val dir = kotlin.io.path.createTempDirectory("cascade").toFile()
        val identity = File(Fixtures.model("identity_f32")).absolutePath
        File(dir, "cascade.json").writeText(
            """{"fast":{"model":"$identity"},"main":{"model":"$identity"},
               "gate":{"confidence":"top_probability","output":"y","threshold":0.7},"table":[]}"""
        )
        Cascade.fromManifest(File(dir, "cascade.json").path).use { cascade ->
            val sure = Tensor.of(floatArrayOf(0.9f, 0.05f, 0.05f, 0.8f, 0.1f, 0.1f), 2, 3)
            val unsure = Tensor.of(floatArrayOf(0.9f, 0.05f, 0.05f, 0.4f, 0.35f, 0.25f), 2, 3)
            assertEquals(CascadePath.FAST, cascade.infer(mapOf("x" to sure)).path)
            assertEquals(CascadePath.MAIN, cascade.infer(mapOf("x" to unsure)).path)
            assertEquals(1L, cascade.counters.escalations)
        }
        File(dir, "broken.json").writeText("{\"fast\": 3}")
        assertFailsWith<EngineException.InvalidModel> { Cascade.fromManifest(File(dir, "broken.json").path) }
        assertFailsWith<EngineException.ModelNotFound> { Cascade.fromManifest(File(dir, "missing.json").path) }
        dir.deleteRecursively()
    }

    @Test fun ctcOutputsDecodeWithTheirDictionary() {
        val dir = kotlin.io.path.createTempDirectory("ctc").toFile()
        val dictionary = File(dir, "dict.txt").apply { writeText("a\nb\n") }
        // classes: blank, a, b, space; steps: a a blank a b space b
        val steps = intArrayOf(1, 1, 0, 1, 2, 3, 2)
        val probabilities = FloatArray(steps.size * 4).also { p -> steps.forEachIndexed { t, c -> p[t * 4 + c] = 0.9f } }
        CtcDecoder.fromFile(dictionary.path).use { decoder ->
            val line = decoder.decode(Tensor.of(probabilities, 1, steps.size, 4))
            assertEquals("aab b", line.text)
            assertEquals(0.9f, line.confidence, 1e-6f)
            assertFailsWith<EngineException.InvalidConfig> { decoder.decode(Tensor.of(FloatArray(9), 1, 1, 9)) }
        }
        assertFailsWith<EngineException.ModelNotFound> { CtcDecoder.fromFile(File(dir, "missing.txt").path) }
        dir.deleteRecursively()
    }
}
