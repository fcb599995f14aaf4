package example.voiceactivity

import ai.openautoglm.Engine
import ai.openautoglm.EngineException
import ai.openautoglm.Tensor
import ai.openautoglm.fromAsset
import android.app.Activity
import android.os.Bundle
import android.widget.TextView
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Runs Silero VAD over one second of silence and then a recording of speech, and shows the mean speech probability of
 * each. Both files are assets: `silero-vad.onnx` from `cargo xtask models fetch silero-vad`, and `speech.wav`, any
 * mono 16-bit WAV of someone talking (16 or 48 kHz), e.g. `cargo xtask models fetch-asset speech-front-center`.
 */
class MainActivity : Activity() {
    private val scope = MainScope()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val text = TextView(this).also(::setContentView)
        text.text = "listening…"
        scope.launch {
            text.text = try {
                val speech = withContext(Dispatchers.IO) { assets.open("speech.wav").use { readWav(it.readBytes()) } }
                // The model is stored uncompressed (noCompress in build.gradle.kts): mapped from the APK, not copied.
                Engine.fromAsset(assets, "silero-vad.onnx").use { engine -> describe(engine, speech) }
            } catch (e: EngineException) {
                "error: ${e.message}"
            }
        }
    }

    private suspend fun describe(engine: Engine, speech: FloatArray): String {
        // Silero VAD v5 reads each 512-sample frame after the 64 samples before it, and carries a state.
        var state = Tensor.of(FloatArray(2 * 128), 2, 1, 128)
        var context = FloatArray(CONTEXT)
        val rate = Tensor.of(longArrayOf(RATE.toLong()))
        suspend fun probabilities(audio: FloatArray): List<Float> = (0 until audio.size / FRAME).map { f ->
            val frame = audio.copyOfRange(f * FRAME, (f + 1) * FRAME)
            val out = engine.infer(mapOf("input" to Tensor.of(context + frame, 1, CONTEXT + FRAME), "state" to state, "sr" to rate))
            state = out.getValue("stateN")
            context = frame.copyOfRange(FRAME - CONTEXT, FRAME)
            out.getValue("output").toFloatArray()[0]
        }
        fun summary(p: List<Float>) = "%.3f (%d of %d frames over 0.5)".format(p.average(), p.count { it > 0.5f }, p.size)
        return "speech probability: silence ${summary(probabilities(FloatArray(RATE)))}, speech ${summary(probabilities(speech))}"
    }

    override fun onDestroy() {
        scope.cancel()
        super.onDestroy()
    }

    private companion object {
        const val FRAME = 512
        const val CONTEXT = 64
        const val RATE = 16_000

        /** The samples of a mono 16-bit PCM WAV as 16 kHz floats in [-1, 1] (48 kHz averaged down by 3). */
        fun readWav(bytes: ByteArray): FloatArray {
            val wav = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
            val sampleRate = wav.getInt(24)
            var at = 12
            while (at + 8 <= bytes.size && String(bytes, at, 4, Charsets.US_ASCII) != "data") at += 8 + wav.getInt(at + 4)
            val samples = ShortArray((minOf(wav.getInt(at + 4), bytes.size - at - 8)) / 2) { wav.getShort(at + 8 + 2 * it) }
            val step = sampleRate / RATE
            require(step >= 1 && sampleRate % RATE == 0) { "speech.wav must be 16 or 48 kHz, not $sampleRate Hz" }
            return FloatArray(samples.size / step) { i -> (0 until step).sumOf { samples[i * step + it].toInt() } / (step * 32768f) }
        }
    }
}
