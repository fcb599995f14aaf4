import Foundation

extension EngineConfig {
    /// CPU, graph optimization O3, ONNX Runtime's thread count and spinning, precision chosen by the engine for
    /// bundles, float16 outputs returned as float32. Adjust a copy: `var c = EngineConfig.default; c.cacheDir = ...`.
    public static let `default` = EngineConfig(accelerators: [.cpu], optimizeLevel: .o3, precision: .auto)
}

/// Outputs of one inference: a collection of `(name, tensor)` in the model's output order, with a subscript by name.
///
/// ```swift
/// for (name, tensor) in outputs { print(name, tensor.shape) }
/// let y: [Float] = try outputs["y"]!.values()
/// ```
public struct Outputs: RandomAccessCollection, Sendable {
    public typealias Element = (name: String, tensor: Tensor)

    /// Output names in model order.
    public let names: [String]
    private let tensors: [Tensor]
    private let positions: [String: Int]

    init(_ natives: [NativeTensor]) {
        self.init(names: natives.map(\.name), tensors: natives.map { Tensor(native: $0) })
    }

    init(names: [String], tensors: [Tensor]) {
        self.names = names
        self.tensors = tensors
        positions = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { tensors.count }
    public subscript(position: Int) -> Element { (names[position], tensors[position]) }

    /// The output called `name`, or nil when the model has none by that name.
    public subscript(name: String) -> Tensor? { positions[name].map { tensors[$0] } }
}

/// A loaded ONNX model, safe to share between tasks and threads.
///
/// ```swift
/// let engine = try Engine(path: modelPath)
/// let outputs = try await engine.infer(["x": Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])])
/// let y: [Float] = try outputs["y"]!.values()
/// ```
/// Failures are thrown as `EngineError` (`.ModelNotFound`, `.InvalidInput(name:reason:)`, `.EngineClosed`, ...).
public final class Engine: Sendable {
    let native: NativeEngine
    /// The engine's address for the per-inference fast path (FastPath.swift), valid while `native` lives.
    let fastHandle: Int64
    /// Input and output positions by name, for the fast path.
    let inputIndex: [String: Int]
    let outputIndex: [String: Int]
    /// Inputs, outputs and metadata of the model.
    public let info: ModelInfo
    /// Which accelerators are in use, and why any others asked for were skipped.
    public let accelerators: AcceleratorReport
    /// Which provider ran how many nodes in how many partitions, with warnings; nil unless `reportPlacement`.
    public let placement: Placement?
    /// The bundle variant running, and why; nil for an engine loaded from one model file.
    public let precision: PrecisionChoice?
    /// What the compile cache did when this engine was built (`.hit`: graph optimization skipped).
    public let compileCache: CacheOutcome

    public convenience init(path: String, config: EngineConfig = .default) throws {
        try Runtime.checkNativeLibrary()
        self.init(try NativeEngine.fromFile(path: path, config: config))
    }

    public convenience init(modelData: Data, config: EngineConfig = .default) throws {
        try Runtime.checkNativeLibrary()
        self.init(try NativeEngine.fromBytes(model: modelData, config: config))
    }

    /// Loads the model stored `length` bytes from `offset` in the open file `fileDescriptor`, mapped rather than
    /// copied (a model inside a larger file the app ships); the descriptor stays the caller's to close.
    public convenience init(fileDescriptor: Int32, offset: Int, length: Int, config: EngineConfig = .default) throws {
        try Runtime.checkNativeLibrary()
        self.init(try NativeEngine.fromFd(fd: fileDescriptor, offset: Int64(offset), length: Int64(length), config: config))
    }

    /// Loads from a model bundle directory (`bundle.json` and its variants, made by `cargo xtask models prepare`)
    /// the variant `config.precision` selects; `precision` says which and why.
    public convenience init(bundle directory: String, config: EngineConfig = .default) throws {
        try Runtime.checkNativeLibrary()
        self.init(try NativeEngine.fromBundle(dir: directory, config: config))
    }

    init(_ native: NativeEngine) {
        self.native = native
        fastHandle = native.fastHandle()
        info = native.info()
        inputIndex = Dictionary(info.inputs.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        outputIndex = Dictionary(info.outputs.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        accelerators = native.accelerators()
        placement = native.placement()
        precision = native.precision()
        compileCache = native.compileCache()
    }

    /// Runs served by each shape bucket (configuration order) and by the dynamic session, so far.
    public var shapeBucketStats: ShapeBucketStats { native.shapeBucketStats() }

    /// Runs stopped part-way so an interactive run could go first, then started again (background work lost).
    public var preemptedRuns: Int { Int(native.preemptedRuns()) }

    /// Runs the model on the calling thread.
    ///
    /// `priority` orders the run among the others waiting in its lane (every engine on the same accelerator in this
    /// process): `.interactive` goes first and stops background runs in progress (they start again after it).
    /// Cancelling `cancel` stops the run, queued at once or running at its next node, with `EngineError.Cancelled`.
    public func inferSync(_ inputs: [String: Tensor], priority: Priority = .normal,
                          cancel: CancelToken? = nil) throws -> Outputs {
        try run(inputs, priority: priority, timeoutMicros: nil, cancel: cancel)
    }

    /// `inferSync` with a deadline `deadline` from now: past it the run fails with `EngineError.DeadlineExceeded`
    /// (queued at once, running at its next node); a result is never delivered late.
    @available(iOS 16, macOS 13, *)
    public func inferSync(_ inputs: [String: Tensor], priority: Priority = .normal, deadline: Duration,
                          cancel: CancelToken? = nil) throws -> Outputs {
        try run(inputs, priority: priority, timeoutMicros: Engine.micros(deadline), cancel: cancel)
    }

    @available(iOS 16, macOS 13, *)
    static func micros(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (micros, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        let (total, overflowAgain) = micros.addingReportingOverflow(attoseconds / 1_000_000_000_000)
        return overflow || overflowAgain ? Int64.max : total
    }

    private func run(_ inputs: [String: Tensor], priority: Priority, timeoutMicros: Int64?,
                     cancel: CancelToken?) throws -> Outputs {
        if let outputs = try fastPath(inputs, into: [:], priority: priority, timeoutMicros: timeoutMicros, cancel: cancel) {
            return outputs
        }
        let (specs, packed) = Engine.pack(inputs)
        return Outputs(try native.run(inputs: specs, data: packed,
                                      options: CallOptions(priority: priority, timeoutUs: timeoutMicros, cancel: cancel)))
    }

    /// Runs the model on the SDK's native queue, off Swift's cooperative thread pool (a run blocks its thread),
    /// scheduled at `priority` as `inferSync` describes. Cancelling the task stops the run (queued at once, running
    /// at its next node) with `EngineError.Cancelled`; a task cancelled before the call throws `CancellationError`.
    public func infer(_ inputs: [String: Tensor], priority: Priority = .normal) async throws -> Outputs {
        try await NativeWork.cancellable { [self] token in try self.run(inputs, priority: priority, timeoutMicros: nil, cancel: token) }
    }

    /// `infer` with a deadline `deadline` from now (`EngineError.DeadlineExceeded` past it; never a late result).
    @available(iOS 16, macOS 13, *)
    public func infer(_ inputs: [String: Tensor], priority: Priority = .normal, deadline: Duration) async throws -> Outputs {
        let micros = Engine.micros(deadline)
        return try await NativeWork.cancellable { [self] token in
            try self.run(inputs, priority: priority, timeoutMicros: micros, cancel: token)
        }
    }


    /// Runs the model `runs` times on zero inputs of the declared shapes, so the slow first inference happens now
    /// rather than on a user's request. Returns milliseconds per run.
    /// `runs` outside 0...1000 throws `EngineError.InvalidConfig`; a cancelled task throws `CancellationError`.
    @discardableResult
    public func warmup(runs: Int = 1) async throws -> [Double] {
        let count = try Engine.checkedRuns(runs)
        try Task.checkCancellation()
        return try await NativeWork.run { [native] in try native.warmup(runs: count) }
    }

    /// `warmup` with example inputs: the shapes an app will run, on every session. Use it (or `warmup(dims:)`) when
    /// the model cannot run with 1 for its dynamic dimensions.
    @discardableResult
    public func warmup(example: [String: Tensor], runs: Int = 1) async throws -> [Double] {
        let count = try Engine.checkedRuns(runs)
        try Task.checkCancellation()
        let (specs, data) = Engine.pack(example)
        return try await NativeWork.run { [native] in try native.warmupWith(inputs: specs, data: data, runs: count) }
    }

    /// `warmup` with zero inputs whose named dynamic dimensions take these sizes, e.g. `["time": 1000]`.
    @discardableResult
    public func warmup(dims: [String: Int], runs: Int = 1) async throws -> [Double] {
        let count = try Engine.checkedRuns(runs)
        let sizes = dims.mapValues { Int64($0) }
        try Task.checkCancellation()
        return try await NativeWork.run { [native, sizes] in try native.warmupDims(dims: sizes, runs: count) }
    }

    private static func checkedRuns(_ runs: Int) throws -> Int32 {
        // The engine checks the range; a count that does not fit Int32 would trap in the conversion.
        guard let count = Int32(exactly: runs) else {
            throw EngineError.InvalidConfig(reason: "warmup runs must be between 0 and 1000, got \(runs)")
        }
        return count
    }

    /// The inputs as specs over one buffer.
    static func pack(_ inputs: [String: Tensor]) -> ([InputSpec], Data) {
        var specs: [InputSpec] = []
        specs.reserveCapacity(inputs.count)
        if inputs.count == 1, let (name, tensor) = inputs.first {
            specs.append(InputSpec(name: name, elementType: tensor.elementType, shape: tensor.nativeShape, offset: 0, length: Int64(tensor.data.count)))
            return (specs, tensor.data)
        }
        var data = Data(capacity: inputs.values.reduce(0) { $0 + $1.data.count })
        for (name, tensor) in inputs {
            specs.append(InputSpec(name: name, elementType: tensor.elementType, shape: tensor.nativeShape,
                                   offset: Int64(data.count), length: Int64(tensor.data.count)))
            data.append(tensor.data)
        }
        return (specs, data)
    }

    /// Releases the model now; later calls throw `EngineError.EngineClosed`. Closing twice is fine.
    public func close() { native.release() }

    public var isClosed: Bool { native.isClosed() }
}

extension ShapeBucket {
    /// A bucket from sizes as `Int`s, as the rest of the Swift API takes them (`warmup(dims:)`).
    public init(_ sizes: [String: Int]) {
        self.init(dims: sizes.mapValues { Int64($0) })
    }
}

/// ONNX Runtime loading and the native-library version handshake.
public enum Runtime {
    /// The version these bindings were generated for.
    public static let version = bindingsVersion

    /// Loads ONNX Runtime from `libraryPath`, or from `ORT_DYLIB_PATH` / the platform default when nil. Optional:
    /// the first engine loads the default.
    @discardableResult
    public static func load(libraryPath: String? = nil) throws -> RuntimeInfo {
        try checkNativeLibrary()
        return try initRuntime(libraryPath: libraryPath)
    }

    /// Whether ONNX Runtime may send its usage telemetry to Microsoft. Off unless the app turns it on, which works
    /// only before the runtime loads (before `load` or the first engine); turning it on later throws
    /// `EngineError.InvalidConfig`. Off, ONNX Runtime's telemetry client never starts: nothing is recorded, stored or
    /// sent.
    public static func setTelemetry(_ enabled: Bool) throws {
        try checkNativeLibrary()
        try OpenAutoGLM.setTelemetry(enabled: enabled)
    }

    /// Whether ONNX Runtime's telemetry is on (false unless `setTelemetry(true)` turned it on).
    public static var telemetryEnabled: Bool { OpenAutoGLM.telemetryEnabled() }

    /// The device class measurements are recorded under when `accelerator` leads (e.g. `ios-aarch64-coreml`):
    /// `.auto` runs the fastest bundle variant measured on it among those that passed their accuracy check.
    public static func deviceClass(for accelerator: Accelerator = .cpu) -> String {
        OpenAutoGLM.deviceClass(accelerator: accelerator)
    }

    /// The numerics class whose accuracy verdicts hold when `accelerator` leads (`linux-aarch64-cpu` on every ARM64
    /// iPhone and Mac): a bundle variant runs, whether `.auto` picks it or the app asks for its precision, only where
    /// it passed its accuracy check on this class. Asking for one that did not throws `EngineError.InvalidConfig`.
    public static func numericsClass(for accelerator: Accelerator = .cpu) -> String {
        OpenAutoGLM.numericsClass(accelerator: accelerator)
    }

    /// What the SDK and ONNX Runtime log (os_log on Apple platforms) from now on; default `.warn`. ONNX Runtime's
    /// report of a failed inference, which the caller receives as an `EngineError`, is logged at `.debug`.
    public static var logLevel: LogLevel {
        get { OpenAutoGLM.logLevel() }
        set { setLogLevel(level: newValue) }
    }

    /// Sends the SDK's and ONNX Runtime's log records at or above `logLevel` to `handler` (the app's own logging)
    /// from now on, or back to the platform's sink with nil (os_log on Apple platforms, stderr on Linux). The handler
    /// runs on the thread that logs, often an inference thread: keep it quick.
    public static func setLogHandler(_ handler: (@Sendable (LogLevel, String, String) -> Void)?) throws {
        try checkNativeLibrary()
        try OpenAutoGLM.setLogHandler(handler: handler.map { ClosureLogHandler($0) })
    }

    /// Throws `EngineError.NativeLibraryUnavailable` when the native library is not the one these bindings were
    /// generated from (as Kotlin's `OpenAutoGLM.checkNativeLibrary`).
    public static func checkNativeLibrary() throws {
        if let mismatch = versionMismatch(native: nativeVersion()) { throw mismatch }
    }

    /// The error for a native library of another version than these bindings', or nil when they match.
    static func versionMismatch(native: String, bindings: String = version) -> EngineError? {
        guard native != bindings else { return nil }
        return EngineError.NativeLibraryUnavailable(
            reason: "libopenautoglm_ffi is version \(native) but the Swift bindings are \(bindings); use the same version of both")
    }
}

/// A Swift closure as the native log handler.
private final class ClosureLogHandler: LogHandler, @unchecked Sendable {
    private let handle: @Sendable (LogLevel, String, String) -> Void
    init(_ handle: @escaping @Sendable (LogLevel, String, String) -> Void) { self.handle = handle }
    func log(level: LogLevel, target: String, message: String) { handle(level, target, message) }
}
