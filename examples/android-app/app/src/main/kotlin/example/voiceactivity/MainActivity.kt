package example.voiceactivity

import ai.openautoglm.Engine
import ai.openautoglm.EngineException
import ai.openautoglm.Tensor
import android.app.Activity
import android.os.Bundle
import android.widget.TextView
import kotlin.math.PI
import kotlin.math.sin
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/**
 * Runs Silero VAD (copy `silero-vad.onnx` from `cargo xtask models fetch silero-vad` into app/src/main/assets) over
 * one second of silence and one of a synthetic voiced sound, and shows the mean speech probability of each.
 */
class MainActivity : Activity() {
    private val scope = MainScope()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val text = TextView(this).also(::setContentView)
        scope.launch {
            text.text = try {
                // The asset is stored uncompressed (noCompress in build.gradle.kts): mapped from the APK, not copied.
                assets.openFd("silero-vad.onnx").use { afd ->
                    Engine.fromFileDescriptor(afd.parcelFileDescriptor.fd, afd.startOffset, afd.length)
                }.use { engine -> describe(engine) }
            } catch (e: EngineException) {
                e.message
            }
        }
    }

    private suspend fun describe(engine: Engine): String {
        val audio = FloatArray(32_000) { i -> if (i < 16_000) 0f else (0.3 * sin(2 * PI * 140 * i / 16_000.0)).toFloat() }
        var state = Tensor.of(FloatArray(2 * 128), 2, 1, 128)
        val rate = Tensor.of(longArrayOf(16_000))
        val probabilities = (0 until audio.size / FRAME).map { f ->
            val frame = Tensor.of(audio.copyOfRange(f * FRAME, (f + 1) * FRAME), 1, FRAME)
            val out = engine.infer(mapOf("input" to frame, "state" to state, "sr" to rate))
            state = out.getValue("stateN")
            out.getValue("output").toFloatArray()[0]
        }
        val half = probabilities.size / 2
        return "speech probability: silence %.3f, voiced %.3f".format(
            probabilities.take(half).average(), probabilities.drop(half).average(),
        )
    }

    override fun onDestroy() {
        scope.cancel()
        super.onDestroy()
    }

    private companion object {
        const val FRAME = 512
    }
}
