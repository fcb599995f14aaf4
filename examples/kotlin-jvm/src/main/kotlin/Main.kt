package example

import ai.openautoglm.Engine
import ai.openautoglm.EngineException
import ai.openautoglm.Tensor
import java.io.File
import kotlin.math.PI
import kotlin.math.sin
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking

/**
 * Voice activity with Silero VAD: the model reads 32 ms of 16 kHz audio at a time and carries a state from one
 * frame to the next. Runs on a 16 kHz mono 16-bit WAV if one is given, else on one second of silence followed by
 * one second of a synthetic voiced sound, and prints the speech probability per frame range.
 */
fun main(args: Array<String>) = runBlocking {
    val model = args.getOrNull(0) ?: run {
        System.err.println("usage: voice-activity <silero-vad.onnx> [audio.wav]")
        exitProcess(2)
    }
    val audio = args.getOrNull(1)?.let(::readWav) ?: demoAudio()
    try {
        Engine.fromFile(model).use { engine ->
            println("model: ${engine.info.inputs.joinToString { it.name }} -> ${engine.info.outputs.joinToString { it.name }}")
            var state = Tensor.of(FloatArray(2 * 128), 2, 1, 128)
            val rate = Tensor.of(longArrayOf(16_000))
            val probabilities = ArrayList<Float>()
            for (start in 0 until audio.size - FRAME + 1 step FRAME) {
                val frame = Tensor.of(audio.copyOfRange(start, start + FRAME), 1, FRAME)
                val out = engine.infer(mapOf("input" to frame, "state" to state, "sr" to rate))
                probabilities += out.getValue("output").toFloatArray()[0]
                state = out.getValue("stateN")
            }
            val half = probabilities.size / 2
            println("frames: ${probabilities.size} of $FRAME samples")
            println("speech probability, first half: %.3f".format(probabilities.take(half).average()))
            println("speech probability, second half: %.3f".format(probabilities.drop(half).average()))
        }
    } catch (e: EngineException) {
        System.err.println("error: ${e.message}")
        exitProcess(1)
    }
}

private const val FRAME = 512

/** One second of silence, then one second of a 140 Hz voiced buzz with two formant-like partials. */
private fun demoAudio(): FloatArray = FloatArray(32_000) { i ->
    if (i < 16_000) 0f else {
        val t = i / 16_000.0
        (0.3 * sin(2 * PI * 140 * t) + 0.2 * sin(2 * PI * 700 * t) + 0.1 * sin(2 * PI * 1200 * t)).toFloat()
    }
}

/** The samples of a 16-bit PCM WAV, scaled to [-1, 1] (the 44-byte canonical header skipped). */
private fun readWav(path: String): FloatArray {
    val bytes = File(path).readBytes()
    return FloatArray((bytes.size - 44) / 2) { i ->
        val lo = bytes[44 + 2 * i].toInt() and 0xff
        val hi = bytes[45 + 2 * i].toInt()
        ((hi shl 8) or lo) / 32768f
    }
}
