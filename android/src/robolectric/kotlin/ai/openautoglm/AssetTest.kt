package ai.openautoglm

import android.content.res.AssetManager
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment

/**
 * Models stored as APK assets, read through the real AssetManager (Robolectric's, over the resource APK aapt made):
 * `silero-vad.onnx` stored uncompressed, `silero-vad.model` the same bytes compressed.
 */
@RunWith(RobolectricTestRunner::class)
class AssetTest {
    private val assets: AssetManager = RuntimeEnvironment.getApplication().assets

    private fun outputs(engine: Engine): FloatArray = engine.inferBlocking(AndroidFixtures.vadInputs()).getValue("output").toFloatArray()

    private val fromFile: FloatArray by lazy { Engine.fromFile(AndroidFixtures.sileroVad).use(::outputs) }

    @Test fun openFdAndFromFileDescriptorGiveTheOutputsOfFromFile() {
        val got = assets.openFd("silero-vad.onnx").use { afd ->
            // The asset sits inside the APK: a descriptor of the whole file, at an offset.
            assertTrue(afd.startOffset > 0, "an asset inside the APK starts after the zip header")
            Engine.fromFileDescriptor(afd.parcelFileDescriptor.fd, afd.startOffset, afd.length)
        }.use(::outputs)
        assertContentEquals(fromFile, got)
    }

    @Test fun fromAssetMapsTheUncompressedModel() {
        Engine.fromAsset(assets, "silero-vad.onnx").use { engine ->
            assertEquals(listOf("input", "state", "sr"), engine.info.inputs.map { it.name })
            assertContentEquals(fromFile, outputs(engine))
        }
    }

    @Test fun anEngineOutlivesTheDescriptorItWasLoadedFrom() {
        val afd = assets.openFd("silero-vad.onnx")
        val engine = afd.use { Engine.fromFileDescriptor(it.parcelFileDescriptor.fd, it.startOffset, it.length) }
        engine.use { assertContentEquals(fromFile, outputs(it)) }
    }

    @Test fun aMissingAssetIsModelNotFound() {
        val e = assertFailsWith<EngineException.ModelNotFound> { Engine.fromAsset(assets, "no-such-model.onnx") }
        assertEquals("asset:no-such-model.onnx", e.path)
    }

    @Test fun aCompressedAssetIsInvalidConfigSayingHowToStoreIt() {
        val e = assertFailsWith<EngineException.InvalidConfig> { Engine.fromAsset(assets, "silero-vad.model") }
        assertTrue("noCompress" in e.reason, e.reason)
        // What the error suggests instead works: the bytes, read through the stream.
        val bytes = assets.open("silero-vad.model").use { it.readBytes() }
        Engine.fromBytes(bytes).use { assertContentEquals(fromFile, outputs(it)) }
    }

    @Test fun aWrongRegionOfTheApkIsInvalidModelAndLeavesTheEngineUsable() {
        assets.openFd("silero-vad.onnx").use { afd ->
            val fd = afd.parcelFileDescriptor.fd
            // The zip's own header instead of the model.
            assertFailsWith<EngineException.InvalidModel> { Engine.fromFileDescriptor(fd, 0, afd.length) }
            assertFailsWith<EngineException.InvalidModel> { Engine.fromFileDescriptor(fd, afd.startOffset, afd.length + (1 shl 30)) }
            Engine.fromFileDescriptor(fd, afd.startOffset, afd.length).use { assertContentEquals(fromFile, outputs(it)) }
        }
    }
}
