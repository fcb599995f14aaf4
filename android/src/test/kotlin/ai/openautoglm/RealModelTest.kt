package ai.openautoglm

import kotlin.math.PI
import kotlin.math.abs
import kotlin.math.sin
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertTrue

/** Real models from registry packages, checked against values computed by Python onnxruntime. */
class RealModelTest {
    @Test fun miniLmInt8MatchesPythonOnnxRuntime() {
        val e = Fixtures.expected.getJSONObject("minilm-l6-int8")
        val ids = e.getJSONArray("input_ids").let { a -> LongArray(a.length()) { a.getLong(it) } }
        val n = ids.size
        Engine.fromFile(Fixtures.realModel("minilm-l6-int8")).use { engine ->
            val out = engine.inferBlocking(mapOf(
                "input_ids" to Tensor.of(ids, 1, n),
                "attention_mask" to Tensor.of(LongArray(ids.size) { 1 }, 1, n),
                "token_type_ids" to Tensor.of(LongArray(ids.size), 1, n),
            )).getValue("last_hidden_state")
            assertContentEquals(longArrayOf(1, n.toLong(), 384), out.shape)
            val want = e.getJSONArray("last_hidden_state")
            val got = out.toFloatArray()
            assertEquals(want.length(), got.size)
            val worst = got.indices.maxOf { abs(got[it] - want.getDouble(it).toFloat()) }
            assertTrue(worst < 1e-3f, "max abs error $worst")
        }
    }

    @Test fun sileroVadStateLoopMatchesPythonOnnxRuntime() {
        val e = Fixtures.expected.getJSONObject("silero-vad")
        val frames = e.getInt("frames"); val len = e.getInt("frame_len"); val sr = e.getInt("sample_rate")
        val tones = e.getJSONArray("tones")
        val audio = FloatArray(frames * len) { i ->
            var v = 0.0
            for (t in 0 until tones.length()) {
                val tone = tones.getJSONArray(t)
                v += tone.getDouble(1) * sin(2 * PI * tone.getDouble(0) * i / sr)
            }
            v.toFloat()
        }
        Engine.fromFile(Fixtures.realModel("silero-vad")).use { engine ->
            var state = Tensor.of(FloatArray(2 * 128), 2, 1, 128)
            val sampleRate = Tensor.of(longArrayOf(sr.toLong()))
            for (f in 0 until frames) {
                val out = engine.inferBlocking(mapOf(
                    "input" to Tensor.of(audio.copyOfRange(f * len, (f + 1) * len), 1, len),
                    "state" to state,
                    "sr" to sampleRate,
                ))
                val p = out.getValue("output").toFloatArray().single()
                assertEquals(e.getJSONArray("probabilities").getDouble(f).toFloat(), p, 1e-4f)
                state = out.getValue("stateN")
                val sum = state.toFloatArray().sumOf { abs(it).toDouble() }
                val want = e.getJSONArray("state_abs_sums").getDouble(f)
                assertTrue(abs(sum - want) < 1e-3 * want, "frame $f: state sum $sum vs $want")
            }
        }
    }
}
