package example

import ai.openautoglm.Engine
import ai.openautoglm.EngineException
import ai.openautoglm.OpenAutoGLM
import ai.openautoglm.Tensor
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking

/**
 * Voice activity with Silero VAD (v5): the model reads 32 ms of 16 kHz audio at a time, with the 64 samples before
 * them as context, and carries a state from one frame to the next. Runs over one second of silence and then a
 * recording of speech (a mono 16-bit WAV at 16 or 48 kHz), and prints for each the mean speech probability and how
 * many frames cross 0.5, the model's usual threshold.
 */
fun main(args: Array<String>) = runBlocking {
    if (args.size < 2) {
        System.err.println("usage: voice-activity <silero-vad.onnx> <speech.wav>")
        exitProcess(2)
    }
    try {
        val speech = readWav(File(args[1]).readBytes())
        println("runtime: ONNX Runtime ${OpenAutoGLM.loadRuntime().ortVersion}")
        Engine.fromFile(args[0]).use { engine ->
            println("model: ${engine.info.inputs.joinToString { it.name }} -> ${engine.info.outputs.joinToString { it.name }}")
            val vad = VoiceActivity(engine)
            val silence = vad.probabilities(FloatArray(RATE))
            val spoken = vad.probabilities(speech)
            println("frames: ${silence.size + spoken.size} of $FRAME samples")
            println(summary("silence", silence))
            println(summary("speech", spoken))
        }
    } catch (e: EngineException) {
        System.err.println("error: ${e.message}")
        exitProcess(1)
    }
}

private const val RATE = 16_000
private const val FRAME = 512
private const val CONTEXT = 64

/** Silero VAD over consecutive frames, its state and the context carried from one to the next. */
private class VoiceActivity(private val engine: Engine) {
    private var state = Tensor.of(FloatArray(2 * 128), 2, 1, 128)
    private var context = FloatArray(CONTEXT)
    private val rate = Tensor.of(longArrayOf(RATE.toLong()))

    suspend fun probabilities(audio: FloatArray): List<Float> = (0 until audio.size / FRAME).map { f ->
        val frame = audio.copyOfRange(f * FRAME, (f + 1) * FRAME)
        val out = engine.infer(mapOf("input" to Tensor.of(context + frame, 1, CONTEXT + FRAME), "state" to state, "sr" to rate))
        state = out.getValue("stateN")
        context = frame.copyOfRange(FRAME - CONTEXT, FRAME)
        out.getValue("output").toFloatArray()[0]
    }
}

private fun summary(what: String, p: List<Float>): String =
    "speech probability, $what: %.3f (%d of %d frames over 0.5)".format(p.average(), p.count { it > 0.5f }, p.size)

/** The samples of a mono 16-bit PCM WAV as 16 kHz floats in [-1, 1] (48 kHz averaged down by 3). */
private fun readWav(bytes: ByteArray): FloatArray {
    val wav = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
    val sampleRate = wav.getInt(24)
    require(sampleRate % RATE == 0) { "the WAV must be 16 or 48 kHz, not $sampleRate Hz" }
    var at = 12
    while (String(bytes, at, 4, Charsets.US_ASCII) != "data") at += 8 + wav.getInt(at + 4)
    val samples = ShortArray(minOf(wav.getInt(at + 4), bytes.size - at - 8) / 2) { wav.getShort(at + 8 + 2 * it) }
    val step = sampleRate / RATE
    return FloatArray(samples.size / step) { i -> (0 until step).sumOf { samples[i * step + it].toInt() } / (step * 32768f) }
}
