package ai.openautoglm

import android.os.Build
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner

/** The Android build of the layer (the `android = true` bindings, Android's cleaner) on the Android 14 framework. */
@RunWith(RobolectricTestRunner::class)
class AndroidVariantTest {
    @Test fun runsOnAndroid14WithTheAndroidBindings() {
        assertEquals(34, Build.VERSION.SDK_INT)
        assertEquals(OpenAutoGLM.VERSION, nativeVersion())
        Engine.fromFile(AndroidFixtures.sileroVad).use { engine ->
            val p = engine.inferBlocking(AndroidFixtures.vadInputs()).getValue("output").toFloatArray().single()
            assertTrue(p in 0f..1f)
        }
    }

    @Test fun engineLeftToTheCleanerIsFreedWithoutACrash() {
        // Android's SystemCleaner (API 34) frees engines an app forgot to close.
        repeat(4) { Engine.fromFile(AndroidFixtures.sileroVad).inferBlocking(AndroidFixtures.vadInputs()) }
        repeat(3) { System.gc(); Thread.sleep(50) }
        Engine.fromFile(AndroidFixtures.sileroVad).use { it.inferBlocking(AndroidFixtures.vadInputs()) }
    }

    @Test fun badInputIsTypedAndTheEngineStaysUsable() = runBlocking<Unit> {
        Engine.fromFile(AndroidFixtures.sileroVad).use { engine ->
            val bad = AndroidFixtures.vadInputs() + ("input" to Tensor.of(FloatArray(3), 1, 3, 1))
            assertFailsWith<EngineException.InvalidInput> { engine.infer(bad) }
            val want = engine.inferBlocking(AndroidFixtures.vadInputs()).getValue("output").toFloatArray()
            val got = withContext(Dispatchers.IO) { engine.infer(AndroidFixtures.vadInputs()) }
            assertContentEquals(want, got.getValue("output").toFloatArray())
        }
    }
}
