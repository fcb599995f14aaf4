import Foundation

/// Accelerators that ONNX Runtime (>= 1.22) loads at run time from a plugin library: each is a `.plugin`,
/// registered once per process the first time an engine asks for it. A plugin that offers no device of the asked
/// kind here is skipped with a reason in `Engine.accelerators` (or refused in strict mode); a missing library is
/// `EngineError.AcceleratorUnavailable`. (iOS apps cannot load libraries at run time: on iOS use `.coreMl`.)
///
/// ```swift
/// var config = EngineConfig.default
/// config.accelerators = [.openVino(library: pluginPath), .cpu]
/// ```
extension Accelerator {
    /// OpenVINO's name for its execution provider, under which its plugin is registered.
    public static let openVinoProvider = "OpenVINOExecutionProvider"
    /// Qualcomm's QNN execution provider.
    public static let qnnProvider = "QNNExecutionProvider"

    /// Intel's OpenVINO through its plugin (`libonnxruntime_providers_openvino_plugin.so` from the PyPI wheel
    /// `onnxruntime-ep-openvino`, with OpenVINO beside it) on `device`. It offers devices only on Intel hardware.
    public static func openVino(library: String, device: DeviceKind = .cpu) -> Accelerator {
        .plugin(library: library, provider: openVinoProvider, device: device, options: [])
    }

    /// Qualcomm's QNN plugin on the Hexagon NPU (HTP) of a Snapdragon device; `performanceMode` is one of QNN's
    /// `htp_performance_mode` values (`burst`, `high_performance`, `balanced`, `power_saver`, ...).
    public static func qnnHtp(library: String = "libonnxruntime_providers_qnn.so", performanceMode: String = "burst")
        -> Accelerator
    {
        .plugin(
            library: library, provider: qnnProvider, device: .npu,
            options: [
                ProviderOption(key: "backend_path", value: "libQnnHtp.so"),
                ProviderOption(key: "htp_performance_mode", value: performanceMode),
            ])
    }
}
