import Foundation

/// Every failure of the engine. The cases carry what a caller acts on (`.InvalidInput(name:reason:)`,
/// `.ModelNotFound(path:)`, ...); `description` (and `localizedDescription`, and what Swift prints for an error
/// thrown at top level) is a sentence that says what to do.
public typealias EngineError = NativeError

extension NativeError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .RuntimeUnavailable(path, reason):
            return "ONNX Runtime is unavailable (tried `\(path)`): \(reason). In Swift, call "
                + "Runtime.load(libraryPath:) with the path of libonnxruntime before the first engine; on Linux "
                + "`cargo xtask publish --local` puts it beside the SDK's library, where it is found by itself."
        case let .RuntimeTooOld(feature, required, loaded):
            return "\(feature) needs ONNX Runtime >= \(required), but the one loaded is \(loaded). Use the runtime this "
                + "SDK is tested with (the Swift package ships it)."
        case let .NativeLibraryUnavailable(reason):
            return "the Open-AutoGLM native library is unavailable: \(reason). Package the library and the Swift "
                + "bindings of one version (`cargo xtask publish --local` on Linux, the XCFramework on Apple platforms)."
        case let .ModelNotFound(path): return "model not found or not readable: `\(path)`"
        case let .InvalidModel(reason): return "invalid model: \(reason)"
        case let .InvalidInput(name, reason): return "invalid input `\(name)`: \(reason)"
        case let .InvalidConfig(reason): return "invalid configuration: \(reason)"
        case let .AcceleratorUnavailable(provider, reason):
            return "accelerator \(provider) is unavailable: \(reason). Ship the plugin's libraries with the app (or "
                + "pass the library's full path); ONNX Runtime >= 1.22 loads plugin execution providers."
        case let .DownloadFailed(name, reason): return "could not download `\(name)`: \(reason)"
        case let .IntegrityFailed(name, reason): return "`\(name)` failed its integrity check: \(reason)"
        case let .InferenceFailed(reason): return "inference failed: \(reason)"
        case let .MemoryLimit(reason): return "memory limit: \(reason)"
        case .Cancelled: return "the request was cancelled before it finished"
        case .DeadlineExceeded: return "the request's deadline passed before it finished; nothing late is delivered"
        case let .ChatBusy(reason): return "the chat is busy: \(reason)"
        case .EngineClosed: return "the engine is closed; create a new one"
        case let .Internal(reason): return "internal error (please report it): \(reason)"
        }
    }
}
