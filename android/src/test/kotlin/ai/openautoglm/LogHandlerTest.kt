package ai.openautoglm

import java.util.Collections
import kotlin.test.AfterTest
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/** The app's own log handler on a desktop JVM (Android's default, logcat, is tested under Robolectric). */
class LogHandlerTest {
    private fun loadAskingForNnapi() {
        val nnapi = Accelerator.Nnapi(fp16 = false, nchw = false, cpuDisabled = false, cpuOnly = false)
        Engine.fromFile(Fixtures.model("matmul_dynamic"), DefaultEngineConfig.copy(accelerators = listOf(nnapi, Accelerator.Cpu))).close()
    }

    @AfterTest fun restore() {
        OpenAutoGLM.setLogHandler(null)
        OpenAutoGLM.logLevel = LogLevel.WARN
    }

    @Test fun aHandlerTakesRecordsAtTheLevelInForceAndNullGivesThemBack() {
        val taken = Collections.synchronizedList(ArrayList<Triple<LogLevel, String, String>>())
        OpenAutoGLM.setLogHandler { level, target, message -> taken += Triple(level, target, message) }
        OpenAutoGLM.logLevel = LogLevel.WARN
        loadAskingForNnapi()
        assertTrue(taken.any { it.first == LogLevel.WARN && it.second.startsWith("openautoglm") && "NnapiExecutionProvider" in it.third }, "$taken")
        OpenAutoGLM.logLevel = LogLevel.ERROR
        val count = taken.size
        loadAskingForNnapi()
        assertEquals(count, taken.size, "below the level in force nothing arrives")
        OpenAutoGLM.setLogHandler(null)
        OpenAutoGLM.logLevel = LogLevel.WARN
        loadAskingForNnapi()
        assertEquals(count, taken.size, "after null the platform's sink (stderr) has them")
    }

    @Test fun aHandlerThatThrowsLosesItsRecordNotTheCall() {
        OpenAutoGLM.setLogHandler { _, _, _ -> throw IllegalStateException("the app's logging failed") }
        OpenAutoGLM.logLevel = LogLevel.WARN
        loadAskingForNnapi()
        Engine.fromFile(Fixtures.model("matmul_dynamic")).use { assertEquals(1, it.info.inputs.size) }
    }
}
