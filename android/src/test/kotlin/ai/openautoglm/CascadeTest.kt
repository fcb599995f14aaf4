package ai.openautoglm

import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.runBlocking

/** Cascades from Kotlin: built-in and lambda gates, counters, options reaching both engines, typed errors. */
class CascadeTest {
    private val sure = floatArrayOf(0.9f, 0.05f, 0.05f, 0.8f, 0.1f, 0.1f)
    private val unsure = floatArrayOf(0.9f, 0.05f, 0.05f, 0.4f, 0.35f, 0.25f)
    private fun identity() = Engine.fromFile(Fixtures.model("identity_f32"))
    private fun input(values: FloatArray) = mapOf("x" to Tensor.of(values, 2, 3))

    @Test fun aBuiltInGateRoutesAndCounts() = runBlocking<Unit> {
        identity().use { fast -> identity().use { main ->
            Cascade(fast, main, Gate.Builtin(Confidence.TOP_PROBABILITY, "y", 0.7f)).use { cascade ->
                val first = cascade.infer(input(sure))
                assertEquals(CascadePath.FAST, first.path)
                assertEquals(0.8f, first.confidence!!, 1e-6f)
                val second = cascade.infer(input(unsure))
                assertEquals(CascadePath.MAIN, second.path)
                assertEquals(unsure.toList(), second.outputs.getValue("y").toFloatArray().toList())
                val counters = cascade.counters
                assertEquals(2L, counters.inputs)
                assertEquals(1L, counters.escalations)
                assertTrue(counters.fastMs > 0 && counters.mainMs > 0, counters.toString())
            }
        } }
    }

    @Test fun aLambdaGateDecidesAndItsExceptionIsATypedError() {
        identity().use { fast -> identity().use { main ->
            Cascade(fast, main, Gate.Custom { outputs -> outputs.getValue("y").toFloatArray()[0] < 0.5f }).use { cascade ->
                assertEquals(CascadePath.FAST, cascade.inferBlocking(input(sure)).path)
                val low = cascade.inferBlocking(input(FloatArray(6) { 0.1f }))
                assertEquals(CascadePath.MAIN, low.path)
                assertNull(low.confidence)
            }
            Cascade(fast, main, Gate.Custom { error("app bug") }).use { cascade ->
                assertFailsWith<EngineException> { cascade.inferBlocking(input(sure)) }
                // The engines are fine afterwards.
                assertEquals(6, fast.inferBlocking(input(sure)).getValue("y").toFloatArray().size)
            }
        } }
    }

    @Test fun badSetUpsAndInputsAreTyped() {
        identity().use { fast ->
            Engine.fromFile(Fixtures.model("multi_io")).use { other ->
                assertFailsWith<EngineException.InvalidConfig> { Cascade(fast, other, Gate.Custom { false }) }
            }
            identity().use { main ->
                val e = assertFailsWith<EngineException.InvalidConfig> {
                    Cascade(fast, main, Gate.Builtin(Confidence.ENTROPY, "nope", 0.5f))
                }
                assertTrue("nope" in e.reason, e.reason)
                Cascade(fast, main, Gate.Builtin(Confidence.MARGIN, "y", 0.5f)).use { cascade ->
                    assertFailsWith<EngineException.InvalidInput> { cascade.inferBlocking(mapOf("x" to Tensor.of(FloatArray(9), 3, 3))) }
                    assertFailsWith<EngineException.Cancelled> {
                        cascade.inferBlocking(input(sure), cancel = CancelToken().also { it.cancel() })
                    }
                }
            }
        }
    }

    /** A passed deadline is DeadlineExceeded; closing is EngineClosed afterwards, and the app's engines stay open. */
    @Test fun deadlinesAndCloseAreTheEngines() {
        identity().use { fast -> identity().use { main ->
            val cascade = Cascade(fast, main, Gate.Builtin(Confidence.TOP_PROBABILITY, "y", 0.7f))
            assertFailsWith<EngineException.DeadlineExceeded> { cascade.inferBlocking(input(sure), deadline = kotlin.time.Duration.ZERO) }
            assertEquals(CascadePath.FAST, cascade.inferBlocking(input(sure), deadline = kotlin.time.Duration.parse("10s")).path)
            cascade.close()
            cascade.close()
            assertTrue(cascade.isClosed)
            assertFailsWith<EngineException.EngineClosed> { cascade.inferBlocking(input(sure)) }
            assertEquals(1L, cascade.counters.inputs, "counters survive close")
            assertTrue(!fast.isClosed && !main.isClosed, "the app's engines stay open")
        } }
    }
}
