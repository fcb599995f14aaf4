package ai.openautoglm

import java.io.File
import org.json.JSONObject

/** Test data shared with the Rust and Swift tests; paths come from `cargo xtask test`. */
object Fixtures {
    private fun dir(env: String): File =
        File(System.getenv(env) ?: error("$env is not set: run the tests with `cargo xtask test`"))

    val data: File get() = dir("OPENAUTOGLM_TEST_DATA")
    fun model(name: String): String = File(data, "models/$name.onnx").path
    fun realModel(id: String): String = File(dir("OPENAUTOGLM_MODELS"), "$id.onnx").path
    /** A model bundle made by `cargo xtask models prepare`. */
    fun bundle(id: String): File = File(dir("OPENAUTOGLM_BUNDLES"), id)
    /** A decoder LLM made by `cargo xtask models prepare smollm2` / `smollm2-tiny`. */
    fun llm(id: String): String = File(dir("OPENAUTOGLM_LLMS"), id).path
    val expected: JSONObject by lazy { JSONObject(File(data, "expected.json").readText()) }
    val ortPath: String get() = System.getenv("ORT_DYLIB_PATH") ?: error("ORT_DYLIB_PATH is not set")
}
