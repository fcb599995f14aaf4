package ai.openautoglm

import java.io.File

/** The real models `cargo xtask test` fetched (OPENAUTOGLM_MODELS), and the inputs the tests share. */
internal object AndroidFixtures {
    val models: File = File(System.getenv("OPENAUTOGLM_MODELS") ?: error("OPENAUTOGLM_MODELS is not set (run cargo xtask test)"))

    /** The model the test app stores as `silero-vad.onnx` (uncompressed) and `silero-vad.model` (compressed). */
    val sileroVad: String get() = File(models, "silero-vad.onnx").path

    /** One Silero VAD frame: 512 samples of a 440 Hz tone, a zero state, 16 kHz. */
    fun vadInputs(): Map<String, Tensor> = mapOf(
        "input" to Tensor.of(FloatArray(512) { kotlin.math.sin(it * 0.1728f) * 0.3f }, 1, 512),
        "state" to Tensor.of(FloatArray(2 * 128), 2, 1, 128),
        "sr" to Tensor.of(longArrayOf(16_000)),
    )
}
