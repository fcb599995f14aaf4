package ai.openautoglm

import android.util.Log
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import org.junit.After
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.shadows.ShadowLog

/**
 * The SDK's and ONNX Runtime's log records reach logcat (Robolectric's ShadowLog records what `android.util.Log`
 * receives) under the tag `OpenAutoGLM`, at the level `OpenAutoGLM.logLevel` sets.
 */
@RunWith(RobolectricTestRunner::class)
class LogcatTest {
    private fun logcat(): List<ShadowLog.LogItem> = ShadowLog.getLogsForTag("OpenAutoGLM")

    /** NNAPI asked for first: on this host it is skipped with a warning, and the CPU runs the model. */
    private fun loadAskingForNnapi() {
        val nnapi = Accelerator.Nnapi(fp16 = false, nchw = false, cpuDisabled = false, cpuOnly = false)
        Engine.fromFile(AndroidFixtures.sileroVad, DefaultEngineConfig.copy(accelerators = listOf(nnapi, Accelerator.Cpu)))
            .use { it.inferBlocking(AndroidFixtures.vadInputs()) }
    }

    @After fun restore() {
        OpenAutoGLM.setLogHandler(null)
        OpenAutoGLM.logLevel = LogLevel.WARN
    }

    @Test fun aWarningReachesLogcatAtWarn() {
        OpenAutoGLM.logLevel = LogLevel.WARN
        ShadowLog.clear()
        loadAskingForNnapi()
        val logged = logcat()
        assertTrue(logged.any { it.type == Log.WARN && "NnapiExecutionProvider" in it.msg }, "the skipped accelerator: $logged")
        assertTrue(logged.all { it.type >= Log.WARN }, "nothing below warn: $logged")
    }

    @Test fun belowTheLevelNothingReachesLogcat() {
        OpenAutoGLM.logLevel = LogLevel.ERROR
        ShadowLog.clear()
        loadAskingForNnapi()
        assertEquals(emptyList(), logcat())
        OpenAutoGLM.logLevel = LogLevel.OFF
        Engine.fromFile(AndroidFixtures.sileroVad).use { engine ->
            runCatching { engine.inferBlocking(AndroidFixtures.vadInputs() + ("sr" to Tensor.of(floatArrayOf(1f)))) }
        }
        assertEquals(emptyList(), logcat())
    }

    @Test fun atDebugOnnxRuntimesOwnRecordsArrive() {
        OpenAutoGLM.logLevel = LogLevel.DEBUG
        ShadowLog.clear()
        Engine.fromFile(AndroidFixtures.sileroVad).use { engine ->
            // A failed run: the caller gets the typed error, ONNX Runtime's report goes to logcat at debug only.
            runCatching { engine.inferBlocking(AndroidFixtures.vadInputs() + ("state" to Tensor.of(FloatArray(8), 2, 1, 4))) }
        }
        val logged = logcat()
        assertTrue(logged.any { it.type == Log.DEBUG && it.msg.startsWith("[onnxruntime]") }, "ONNX Runtime at debug: $logged")
        assertTrue(logged.none { it.type < Log.DEBUG }, "nothing at verbose")
        assertTrue(logged.none { it.type >= Log.WARN && it.msg.startsWith("[onnxruntime]") }, "a failed run is no warning: $logged")
    }

    @Test fun anAppHandlerTakesTheRecordsAndNullGivesThemBackToLogcat() {
        val taken = java.util.Collections.synchronizedList(ArrayList<String>())
        OpenAutoGLM.setLogHandler { level, target, message -> taken += "$level $target $message" }
        OpenAutoGLM.logLevel = LogLevel.WARN
        ShadowLog.clear()
        loadAskingForNnapi()
        assertTrue(taken.any { it.startsWith("WARN openautoglm") && "NnapiExecutionProvider" in it }, "the app's handler: $taken")
        assertEquals(emptyList(), logcat(), "logcat gets nothing while the app's handler is set")
        OpenAutoGLM.setLogHandler(null)
        loadAskingForNnapi()
        assertTrue(logcat().any { "NnapiExecutionProvider" in it.msg }, "back to logcat: ${logcat()}")
    }
}
