package ai.openautoglm

import com.sun.jna.Library
import com.sun.jna.Native
import java.io.File
import kotlin.test.Test
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith

/**
 * A model stored at an offset inside a larger file, loaded from a file descriptor, offset and length: what an app
 * gets from `AssetFileDescriptor` for an uncompressed APK asset. The JVM has no public raw descriptor, so the test
 * opens one with libc's `open` through JNA, as Android's ParcelFileDescriptor would hold it.
 */
class FileDescriptorTest {
    private interface LibC : Library {
        fun open(path: String, flags: Int): Int
        fun close(fd: Int): Int
    }

    private val libc: LibC = Native.load("c", LibC::class.java)

    private fun <T> withPackedModel(block: (fd: Int, offset: Long, length: Long) -> T): T {
        val model = File(Fixtures.model("matmul_dynamic")).readBytes()
        val file = File.createTempFile("openautoglm-apk", ".bin").apply { deleteOnExit() }
        file.writeBytes(ByteArray(4099) { 0x5a } + model + "PK-trailer".toByteArray())
        val fd = libc.open(file.path, 0 /* O_RDONLY */)
        check(fd >= 0) { "open failed" }
        try {
            return block(fd, 4099L, model.size.toLong())
        } finally {
            libc.close(fd)
        }
    }

    @Test fun aModelAtAnOffsetRunsLikeTheFileItself() { withPackedModel { fd, offset, length ->
        val x = Tensor.of(floatArrayOf(1f, 2f, 3f, 4f), 1, 4)
        val want = Engine.fromFile(Fixtures.model("matmul_dynamic")).use { it.inferBlocking(mapOf("x" to x)).getValue("y").toFloatArray() }
        Engine.fromFileDescriptor(fd, offset, length).use { engine ->
            assertContentEquals(want, engine.inferBlocking(mapOf("x" to x)).getValue("y").toFloatArray())
        }
    } }

    @Test fun badDescriptorsAndRegionsAreTypedErrors() { withPackedModel { fd, offset, length ->
        assertFailsWith<EngineException.ModelNotFound> { Engine.fromFileDescriptor(-1, offset, length) }
        assertFailsWith<EngineException.ModelNotFound> { Engine.fromFileDescriptor(987_654, offset, length) }
        assertFailsWith<EngineException.InvalidModel> { Engine.fromFileDescriptor(fd, offset, 0) }
        assertFailsWith<EngineException.InvalidModel> { Engine.fromFileDescriptor(fd, offset, length + 100) }
        assertFailsWith<EngineException.InvalidModel> { Engine.fromFileDescriptor(fd, -1, length) }
        assertFailsWith<EngineException.InvalidModel> { Engine.fromFileDescriptor(fd, 0, length) }
        // The descriptor stays the caller's and still loads.
        Engine.fromFileDescriptor(fd, offset, length).use { assertEquals(1, it.info.inputs.size) }
    } }
}
