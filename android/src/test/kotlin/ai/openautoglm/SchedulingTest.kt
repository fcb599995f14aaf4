package ai.openautoglm

import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.minutes
import kotlin.time.measureTimedValue
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/**
 * Many requests from Kotlin: concurrent runs, priorities, deadlines, coroutine cancellation that reaches a running
 * inference, close during runs, and LLM streams sharing one model. `matmul_chain` (400 MatMuls, a few hundred ms) is
 * long enough to stop part-way.
 */
class SchedulingTest {
    private val size = 384
    private val x = Tensor.of(FloatArray(size * size) { 1f / size }, size, size)

    private fun chain() = Engine.fromFile(Fixtures.model("matmul_chain"))
    private fun Engine.runChain(priority: Priority = Priority.NORMAL) =
        inferBlocking(mapOf("x" to x), priority).getValue("y").toFloatArray()

    private fun minilm(concurrency: Int) =
        Engine.fromFile(Fixtures.realModel("minilm-l6-int8"), DefaultEngineConfig.copy(concurrency = concurrency))

    private fun tokens(i: Int) = LongArray(8 + i) { t -> 101L + (t * 37 + i * 11) % 2000 }
    private fun Engine.embed(ids: LongArray, priority: Priority = Priority.NORMAL): FloatArray {
        val n = ids.size
        return inferBlocking(mapOf(
            "input_ids" to Tensor.of(ids, 1, n),
            "attention_mask" to Tensor.of(LongArray(ids.size) { 1 }, 1, n),
            "token_type_ids" to Tensor.of(LongArray(ids.size), 1, n),
        ), priority).getValue("last_hidden_state").toFloatArray()
    }

    @Test fun concurrentInferOnOneEngineIsBitIdenticalToSerial() = runBlocking<Unit> {
        val expected = minilm(1).use { serial -> (0 until 8).map { serial.embed(tokens(it)) } }
        minilm(2).use { engine ->
            val got = (0 until 3).flatMap { round ->
                (0 until 8).map { i -> async(Dispatchers.Default) { i to engine.infer(mapOf(
                    "input_ids" to Tensor.of(tokens(i), 1, tokens(i).size),
                    "attention_mask" to Tensor.of(LongArray(tokens(i).size) { 1 }, 1, tokens(i).size),
                    "token_type_ids" to Tensor.of(LongArray(tokens(i).size), 1, tokens(i).size),
                ), priority = if (round == 0) Priority.INTERACTIVE else Priority.NORMAL).getValue("last_hidden_state").toFloatArray() } }
            }.awaitAll()
            for ((i, y) in got) assertContentEquals(expected[i], y, "request $i")
        }
        assertFailsWith<EngineException.InvalidConfig> {
            Engine.fromFile(Fixtures.model("matmul_dynamic"), DefaultEngineConfig.copy(concurrency = 0))
        }
    }

    @Test fun cancellingTheCoroutineStopsARunningInference() = runBlocking<Unit> {
        chain().use { engine ->
            val (full, whole) = measureTimedValue { engine.runChain() }
            val job = launch(Dispatchers.Default) { engine.infer(mapOf("x" to x)) }
            delay(10)
            val (_, stopping) = measureTimedValue { job.cancelAndJoin() }
            assertTrue(job.isCancelled)
            assertTrue(stopping < whole / 2, "cancel took $stopping; a whole run takes $whole")
            // An explicit token does the same for a blocking call, as a typed exception.
            val token = CancelToken()
            token.cancel()
            assertFailsWith<EngineException.Cancelled> { engine.inferBlocking(mapOf("x" to x), cancel = token) }
            token.close()
            assertContentEquals(full, engine.runChain(), "the engine answers exactly after a cancel")
        }
    }

    @Test fun aDeadlineFailsTheRunAndTheEngineStaysUsable() = runBlocking<Unit> {
        chain().use { engine ->
            val full = engine.runChain()
            assertFailsWith<EngineException.DeadlineExceeded> { engine.infer(mapOf("x" to x), deadline = 3.milliseconds) }
            assertFailsWith<EngineException.DeadlineExceeded> { engine.infer(mapOf("x" to x), deadline = (-1).milliseconds) }
            val y = engine.infer(mapOf("x" to x), deadline = 10.minutes).getValue("y").toFloatArray()
            assertContentEquals(full, y)
        }
    }

    @Test fun anInteractiveRunStopsABackgroundRunWhichThenFinishesExactly() = runBlocking<Unit> {
        chain().use { background ->
            minilm(1).use { interactive ->
                val expected = background.runChain()
                val answer = interactive.embed(tokens(3))
                val bg = async(Dispatchers.Default) { background.runChain(Priority.BACKGROUND) to System.nanoTime() }
                delay(10)
                assertContentEquals(answer, interactive.embed(tokens(3), Priority.INTERACTIVE))
                val interactiveDone = System.nanoTime()
                val (y, backgroundDone) = bg.await()
                assertContentEquals(expected, y, "a restarted run gives the same answer")
                assertTrue(backgroundDone > interactiveDone)
                assertTrue(background.preemptedRuns >= 1, "preempted ${background.preemptedRuns}")
            }
        }
    }

    @Test fun closeDuringARunGivesEngineClosed() = runBlocking<Unit> {
        val engine = chain()
        val running = async(Dispatchers.Default) { runCatching { engine.runChain() } }
        delay(10)
        engine.close()
        assertTrue(running.await().exceptionOrNull() is EngineException.EngineClosed)
        assertFailsWith<EngineException.EngineClosed> { engine.runChain() }
    }

    @Test fun llmStreamsShareOneModelAndAChatTakesOneMessageAtATime() = runBlocking<Unit> {
        Llm.open(Fixtures.llm("smollm2-tiny"), DefaultEngineConfig.copy(intraOpThreads = 1)).use { llm ->
            val prompts = listOf("The sea is", "Once upon a time", "Count with me")
            val options = GenerateOptions(maxTokens = 16)
            val solo = prompts.map { llm.generate(it, options).toList().joinToString("") }
            val together = prompts.mapIndexed { i, p ->
                async { llm.generate(p, options, priority = Priority.entries[i]).toList().joinToString("") }
            }.awaitAll()
            assertEquals(solo, together)

            val chat = llm.newChat()
            val streaming = CompletableDeferred<Unit>()
            val first = launch {
                chat.send("First", GenerateOptions(maxTokens = 1000, minTokens = 1000)).collect { streaming.complete(Unit) }
            }
            streaming.await()
            assertFailsWith<EngineException.ChatBusy> { chat.send("Second").toList() }
            first.cancelAndJoin()
            // The cancelled answer ends on its worker thread; then the chat takes the next message.
            withTimeout(10_000) {
                while (true) {
                    try {
                        chat.send("Second", GenerateOptions(maxTokens = 4)).toList()
                        break
                    } catch (e: EngineException.ChatBusy) {
                        delay(5)
                    }
                }
            }
            assertEquals(listOf("First", "Second"), chat.history.filter { it.role == "user" }.map { it.content })
        }
    }
}
