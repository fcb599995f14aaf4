package ai.openautoglm

import android.content.res.AssetManager
import java.io.FileNotFoundException
import java.io.IOException

/**
 * Loads the model stored as [name] in the app's assets, mapped in place from the APK (no copy to disk or heap):
 * ```
 * val engine = Engine.fromAsset(context.assets, "model.onnx")
 * ```
 * The asset must be stored uncompressed (`androidResources { noCompress += "onnx" }` in Gradle); a compressed one
 * is [EngineException.InvalidConfig] saying so, a missing one [EngineException.ModelNotFound] (path `asset:NAME`).
 */
@Throws(EngineException::class)
fun Engine.Companion.fromAsset(assets: AssetManager, name: String, config: EngineConfig = DefaultEngineConfig): Engine {
    val afd = try {
        assets.openFd(name)
    } catch (e: IOException) {
        throw notMappable(assets, name, e)
    }
    return afd.use { Engine.fromFileDescriptor(it.parcelFileDescriptor.fd, it.startOffset, it.length, config) }
}

/** Why `openFd` failed: the asset is missing, or there but compressed (which `open` can still read). */
private fun notMappable(assets: AssetManager, name: String, cause: IOException): EngineException {
    val exists = try {
        assets.open(name).close()
        true
    } catch (_: FileNotFoundException) {
        false
    }
    val error = if (exists) {
        EngineException.InvalidConfig(
            "asset `$name` is compressed in the APK, so it cannot be mapped; store it uncompressed " +
                "(androidResources { noCompress += \"${name.substringAfterLast('.')}\" } in Gradle), or read it " +
                "into memory and use Engine.fromBytes",
        )
    } else {
        EngineException.ModelNotFound("asset:$name")
    }
    return error.apply { initCause(cause) }
}
