package ai.openautoglm

import java.util.concurrent.Executors
import org.json.JSONObject
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking

/** Streaming generation from Kotlin: the tiny random decoder for the mechanics, SmolLM2 for a real answer. */
class LlmTest {
    private fun tiny() = Llm.open(Fixtures.llm("smollm2-tiny"), DefaultEngineConfig.copy(intraOpThreads = 1))

    @Test fun piecesStreamAsAFlowWithMetrics() = runBlocking<Unit> {
        tiny().use { llm ->
            var finished: Pair<GenerationMetrics, FinishReason?>? = null
            val pieces = llm.generate("The sea is", GenerateOptions(maxTokens = 8)) { m, r -> finished = m to r }.toList()
            assertTrue(pieces.isNotEmpty() && pieces.all { it.isNotEmpty() })
            val (metrics, reason) = finished!!
            assertTrue(reason == FinishReason.LENGTH || reason == FinishReason.STOP, "$reason")
            assertTrue(metrics.generatedTokens in 1..8)
            assertTrue(metrics.timeToFirstTokenMs > 0.0)
        }
    }

    @Test fun cancellingTheCollectorCancelsTheGeneration() = runBlocking<Unit> {
        tiny().use { llm ->
            var finished: FinishReason? = null
            var generated = 0
            val firstTwo = llm.generate("Count", GenerateOptions(maxTokens = 200)) { m, r -> finished = r; generated = m.generatedTokens }
                .take(2).toList()
            assertEquals(2, firstTwo.size)
            assertEquals(FinishReason.CANCELLED, finished)
            assertTrue(generated < 200, "stopped early: $generated tokens")
        }
    }

    @Test fun sameSeedSameText() = runBlocking<Unit> {
        tiny().use { llm ->
            val options = GenerateOptions(maxTokens = 12, temperature = 1.0f, topK = 40, seed = 5L)
            assertEquals(llm.generate("Hello", options).toList(), llm.generate("Hello", options).toList())
        }
    }

    @Test fun chatKeepsItsTurns() = runBlocking<Unit> {
        tiny().use { llm ->
            val chat = llm.newChat("You are terse.")
            val answer = chat.send("Hi", GenerateOptions(maxTokens = 4)).toList().joinToString("")
            assertEquals(listOf("system", "user", "assistant"), chat.history.map { it.role })
            assertEquals(answer, chat.history.last().content)
        }
    }

    /** Later turns start from the kept cache and answer exactly as a full prefill of the same history. */
    @Test fun laterTurnsReuseTheCacheAndAnswerAsAFullPrefill() = runBlocking<Unit> {
        tiny().use { llm ->
            val chat = llm.newChat("You are terse.")
            for ((turn, message) in listOf("First question", "Second question", "Third question").withIndex()) {
                val fresh = llm.chat(chat.history + ChatMessage("user", message), GenerateOptions(maxTokens = 6))
                    .toList().joinToString("")
                var metrics: GenerationMetrics? = null
                val answer = chat.send(message, GenerateOptions(maxTokens = 6)) { m, _ -> metrics = m }
                    .toList().joinToString("")
                assertEquals(fresh, answer, "turn $turn")
                if (turn > 0) assertTrue(metrics!!.cachedPromptTokens > 0, "turn $turn reuses the cache")
                assertTrue(chat.cacheBytes > 0)
            }
            chat.releaseCache()
            assertEquals(0L, chat.cacheBytes)
        }
    }

    /** A second chat with the same system prompt starts from the first one's cached prefix, and answers the same. */
    @Test fun chatsWithOneSystemPromptShareItsCache() = runBlocking<Unit> {
        tiny().use { llm ->
            tiny().use { fresh ->
                val system = "You are a careful assistant for a hiking club. Answer briefly and name the trail."
                llm.newChat(system).send("Which trail is the longest?", GenerateOptions(maxTokens = 6)).toList()
                val second = llm.newChat(system)
                val want = fresh.chat(listOf(ChatMessage("system", system), ChatMessage("user", "Is it open?")),
                    GenerateOptions(maxTokens = 6)).toList().joinToString("")
                var metrics: GenerationMetrics? = null
                val got = second.send("Is it open?", GenerateOptions(maxTokens = 6)) { m, _ -> metrics = m }
                    .toList().joinToString("")
                assertEquals(want, got)
                assertTrue(metrics!!.cachedPromptTokens > llm.encode(system).size, "the system prompt is reused")
            }
        }
    }

    /** Over the idle limit, the least recently used chat gives its cache back. */
    @Test fun idleCachesOverTheLimitAreGivenBackLeastRecentlyUsedFirst() = runBlocking<Unit> {
        tiny().use { llm ->
            val older = llm.newChat("You are terse.")
            older.send("First question", GenerateOptions(maxTokens = 6)).toList()
            assertEquals(older.cacheBytes, llm.cacheBytes)
            llm.idleCacheLimitBytes = older.cacheBytes * 3 / 2
            val newer = llm.newChat("You are terse.")
            newer.send("Other question", GenerateOptions(maxTokens = 6)).toList()
            assertEquals(0L, older.cacheBytes)
            assertTrue(newer.cacheBytes > 0 && llm.cacheBytes <= llm.idleCacheLimitBytes)
        }
    }

    @Test fun badRequestsAreTypedExceptions() = runBlocking<Unit> {
        tiny().use { llm ->
            assertFailsWith<EngineException.InvalidConfig> { llm.generate("Hi", GenerateOptions(temperature = -1f)).collect() }
            assertFailsWith<EngineException.InvalidInput> { llm.generate("").collect() }
            assertTrue(llm.generate("Hi", GenerateOptions(maxTokens = 2)).toList().isNotEmpty(), "still usable after errors")
        }
        assertFailsWith<EngineException.ModelNotFound> { Llm.open("/nonexistent") }
    }

    @Test fun generationRunsOnTheGivenDispatcher() = runBlocking<Unit> {
        val executor = Executors.newSingleThreadExecutor { task -> Thread(task, "llm-worker") }
        try {
            tiny().use { llm ->
                var thread = ""
                llm.generate("Hi", GenerateOptions(maxTokens = 2), dispatcher = executor.asCoroutineDispatcher()) { _, _ ->
                    thread = Thread.currentThread().name
                }.toList()
                assertTrue(thread.startsWith("llm-worker"), thread)
            }
        } finally {
            executor.shutdown()
        }
    }

    @Test fun closedLlmAndItsChatsThrowEngineClosed() = runBlocking<Unit> {
        val llm = tiny()
        val chat = llm.newChat("Be brief.")
        llm.close()
        llm.close()
        assertTrue(llm.isClosed)
        assertFailsWith<EngineException.EngineClosed> { llm.generate("Hi").collect() }
        assertFailsWith<EngineException.EngineClosed> { llm.chat(listOf(ChatMessage("user", "Hi"))).collect() }
        assertFailsWith<EngineException.EngineClosed> { llm.newChat() }
        assertFailsWith<EngineException.EngineClosed> { chat.send("Hi").collect() }
        assertFailsWith<EngineException.EngineClosed> { chat.history }
    }

    /** A chat with a system message and three exchanges. */
    private fun threeExchanges(llm: Llm, policy: HistoryPolicy): Llm.Chat = runBlocking {
        val chat = llm.newChat("You are terse.", policy)
        for (message in listOf("First question", "Second question", "Third question")) {
            chat.send(message, GenerateOptions(maxTokens = 3)).toList()
        }
        assertEquals(listOf("system", "user", "assistant", "user", "assistant", "user", "assistant"), chat.history.map { it.role })
        chat
    }

    @Test fun aMessageTooLongForTheContextLeavesTheHistoryAsItWas() = runBlocking<Unit> {
        tiny().use { llm ->
            for (policy in HistoryPolicy.values()) {
                val chat = threeExchanges(llm, policy)
                val before = chat.history
                val tooLong = "word ".repeat(2048 + 10)
                val refused = assertFailsWith<EngineException.InvalidInput> { chat.send(tooLong).collect() }
                assertEquals("message", refused.name)
                assertEquals(before, chat.history, "$policy: nothing dropped, the refused message not kept")
            }
        }
    }

    @Test fun aFullContextDropsWholeExchangesOldestFirst() = runBlocking<Unit> {
        tiny().use { llm ->
            val chat = threeExchanges(llm, HistoryPolicy.DROP_OLDEST_EXCHANGES)
            val history = chat.history
            // Of the 2,048 positions, leave 45 for the prompt: with the newest exchange it takes 37 tokens, with two 53
            // (the tiny decoder's greedy answers; core/tests/chat_history.rs computes them).
            val options = GenerateOptions(maxTokens = 2003)
            chat.send("Fourth question", options).take(1).toList()
            val after = chat.history
            assertEquals(listOf("system", "user", "assistant", "user", "assistant"), after.map { it.role })
            assertEquals(history[0], after[0])
            assertEquals(history.subList(5, 7), after.subList(1, 3))
            assertEquals("Fourth question", after[3].content)
        }
    }

    @Test fun maxTokensZeroIsRefused() = runBlocking<Unit> {
        tiny().use { llm ->
            assertFailsWith<EngineException.InvalidConfig> { llm.generate("Hi", GenerateOptions(maxTokens = 0)).collect() }
        }
    }

    /** Seed 616 cuts a character in half at one token (see core/tests/chat_history.rs): every view says U+FFFD. */
    @Test fun anAnswerCutMidCharacterIsTheSameTextInEveryView() {
        tiny().use { llm ->
            val native = NativeLlm.open(Fixtures.llm("smollm2-tiny"), DefaultEngineConfig.copy(intraOpThreads = 1))
            val generation = native.generate("Hello", GenerateOptions(maxTokens = 1, temperature = 8f, seed = 616L))
            val pieces = buildString { while (true) append(generation.nextPiece() ?: break) }
            assertEquals(pieces, generation.text())
            assertEquals(llm.decode(generation.tokens()), generation.text())
            assertTrue(pieces.endsWith("\uFFFD"), pieces)
            generation.destroy()
            native.destroy()
        }
    }

    /** A copy of the tiny decoder under three names, with `llm.json` verdicts as `models prepare` writes them. */
    private fun decoders(int4MixedPassed: Boolean): java.io.File {
        val tiny = java.io.File(Fixtures.llm("smollm2-tiny"))
        val dir = kotlin.io.path.createTempDirectory("openautoglm-llm").toFile()
        for (name in listOf("tokenizer.json", "decoder.json", "chat_template.jinja", "fp32.onnx.data")) {
            java.io.File(tiny, name).copyTo(java.io.File(dir, name))
        }
        for (name in listOf("fp32.onnx", "int4.onnx", "int4-mixed.onnx")) java.io.File(tiny, "fp32.onnx").copyTo(java.io.File(dir, name))
        java.io.File(dir, "llm.json").writeText(
            """{"precisions": {"fp32": {"file": "fp32.onnx", "quality": {"passed": true}},
                "int4": {"file": "int4.onnx", "quality": {"passed": false}},
                "int4-mixed": {"file": "int4-mixed.onnx", "quality": {"passed": $int4MixedPassed}}}}"""
        )
        return dir
    }

    /** A generation that fails ends with its typed error and reports FAILED, never STOP. */
    @Test fun aFailedGenerationReportsFailed() = runBlocking<Unit> {
        val dir = decoders(int4MixedPassed = false)
        // decoder.json claims one more token than the decoder's logits hold: the first step fails.
        val config = java.io.File(dir, "decoder.json")
        config.writeText(JSONObject(config.readText()).put("vocab", 49153).toString())
        Llm.open(dir.path).use { llm ->
            var finished: FinishReason? = null
            val e = assertFailsWith<EngineException.InferenceFailed> {
                llm.generate("The sea is", GenerateOptions(maxTokens = 4)) { _, r -> finished = r }.toList()
            }
            assertTrue("49153" in e.reason, e.reason)
            assertEquals(FinishReason.FAILED, finished)
        }
        dir.deleteRecursively()
    }

    @Test fun autoNeverPicksADecoderThatFailedItsQualityCheck() {
        val passed = decoders(int4MixedPassed = true)
        Llm.open(passed.path).use { assertEquals("int4-mixed.onnx", it.precision.file, it.precision.reason) }
        val failed = decoders(int4MixedPassed = false)
        Llm.open(failed.path).use { assertEquals("fp32.onnx", it.precision.file, it.precision.reason) }
        // Asked for by name, a failed decoder runs, and says so.
        Llm.open(failed.path, DefaultEngineConfig.copy(precision = Precision.INT4)).use {
            assertTrue("did not pass" in it.precision.reason, it.precision.reason)
        }
        passed.deleteRecursively()
        failed.deleteRecursively()
    }

    @Test fun smolLm2AnswersTheCapitalOfFrance() = runBlocking<Unit> {
        // Auto runs the smallest decoder that passed its quality check on this machine, as llm.json records it.
        val index = JSONObject(java.io.File(Fixtures.llm("smollm2"), "llm.json").readText()).getJSONObject("precisions")
        fun passed(p: String) = index.optJSONObject(p)?.optJSONObject("quality")?.optBoolean("passed") == true
        val smallest = listOf("int4-mixed", "int4", "int8", "fp16").firstOrNull(::passed) ?: "fp32"
        Llm.open(Fixtures.llm("smollm2")).use { llm ->
            assertEquals("$smallest.onnx", llm.file, llm.precision.reason)
            assertTrue(llm.precision.reason.startsWith("auto"), llm.precision.reason)
            val answer = llm.chat(listOf(ChatMessage("user", "What is the capital of France?")), GenerateOptions(maxTokens = 24))
                .toList().joinToString("")
            assertTrue("Paris" in answer, answer)
        }
    }
}
