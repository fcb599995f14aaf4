package ai.openautoglm

/**
 * Accelerators that ONNX Runtime (>= 1.22) loads at run time from a plugin library: each is an
 * [Accelerator.Plugin], registered once per process the first time an engine asks for it.
 *
 * ```kotlin
 * val config = DefaultEngineConfig.copy(accelerators = listOf(Accelerators.qnnHtp(), Accelerator.Cpu))
 * ```
 *
 * A plugin that offers no device of the asked kind on this phone is skipped with a reason in
 * [Engine.accelerators] (or refused in strict mode); a missing library is [EngineException.AcceleratorUnavailable].
 */
object Accelerators {
    /** OpenVINO's name for its execution provider, under which its plugin is registered. */
    const val OPENVINO: String = "OpenVINOExecutionProvider"

    /** Qualcomm's QNN execution provider. */
    const val QNN: String = "QNNExecutionProvider"

    /**
     * Intel's OpenVINO through its plugin (`libonnxruntime_providers_openvino_plugin.so` from the PyPI wheel
     * `onnxruntime-ep-openvino`, with OpenVINO beside it) on [device]. It offers devices only on Intel hardware.
     */
    @JvmStatic @JvmOverloads
    fun openVino(library: String, device: DeviceKind = DeviceKind.CPU): Accelerator =
        Accelerator.Plugin(library, OPENVINO, device, emptyList())

    /**
     * Qualcomm's QNN plugin on the Hexagon NPU (HTP) of a Snapdragon phone. [library] is the plugin in
     * `com.qualcomm.qti:onnxruntime-android-qnn` (a plain file name is found in the app's native library directory);
     * [performanceMode] is one of QNN's `htp_performance_mode` values (`burst`, `high_performance`, `balanced`,
     * `power_saver`, ...; `default` leaves it to QNN).
     */
    @JvmStatic @JvmOverloads
    fun qnnHtp(library: String = "libonnxruntime_providers_qnn.so", performanceMode: String = "burst"): Accelerator =
        Accelerator.Plugin(
            library,
            QNN,
            DeviceKind.NPU,
            listOf(ProviderOption("backend_path", "libQnnHtp.so"), ProviderOption("htp_performance_mode", performanceMode)),
        )
}
