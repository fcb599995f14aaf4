package ai.openautoglm

import android.os.Looper
import android.widget.TextView
import example.voiceactivity.MainActivity
import kotlin.test.assertTrue
import kotlin.test.fail
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf

/**
 * The example app (examples/android-app) launched as Android launches it, with its assets: the model (uncompressed)
 * and a recording of speech. It shows speech detected in the recording and none in the silence.
 */
@RunWith(RobolectricTestRunner::class)
class ExampleAppTest {
    @Test fun theActivityShowsSpeechInTheRecordingAndNoneInSilence() {
        Robolectric.buildActivity(MainActivity::class.java).setup().use { controller ->
            val text = controller.get().window.decorView.findViewById<android.view.ViewGroup>(android.R.id.content).getChildAt(0) as TextView
            val shown = awaitResult(text)
            println("example app: $shown")
            val match = Regex("""silence [0-9.]+ \((\d+) of (\d+) frames over 0.5\), speech [0-9.]+ \((\d+) of (\d+) frames""").find(shown)
                ?: fail("no probabilities shown: $shown")
            val (silentOver, silentFrames, speechOver, speechFrames) = match.destructured.toList().map(String::toInt)
            assertTrue(silentFrames == 31 && silentOver == 0, "no frame of the silence is speech: $shown")
            assertTrue(speechFrames > 30 && speechOver * 4 >= speechFrames, "the recording is speech: $shown")
        }
    }

    /** Runs the main looper (where the activity's coroutine resumes) until the text is the result, up to 60 s. */
    private fun awaitResult(text: TextView): String {
        val deadline = System.nanoTime() + 60_000_000_000
        while (System.nanoTime() < deadline) {
            shadowOf(Looper.getMainLooper()).idle()
            val shown = text.text.toString()
            if (shown.startsWith("speech probability") || shown.startsWith("error")) return shown
            Thread.sleep(20)
        }
        fail("the activity showed no result within 60 s: ${text.text}")
    }
}
