import Foundation

/// What decides whether an input goes on from the fast engine to the main one.
public enum Gate: Sendable {
    /// Escalate when the confidence read from `output` (scores along its last axis; softmax first with `logits`) is
    /// below `threshold`.
    case builtin(Confidence, output: String, threshold: Float, logits: Bool = false)
    /// The app's own rule over the fast engine's outputs: `true` escalates.
    case custom(@Sendable (Outputs) -> Bool)
}

/// A result, the path that produced it, and what a built-in gate read (nil with a custom gate).
public struct CascadeResult: Sendable {
    public let outputs: Outputs
    public let path: CascadePath
    public let confidence: Float?
}

/// An adaptive pipeline: `fast` answers first and the gate decides whether `main` must answer instead. Both engines
/// run with the request's priority, deadline and cancellation, and stay the app's.
///
/// ```swift
/// let cascade = try Cascade(fast: tiny, main: small, gate: .builtin(.sequenceMeanMax, output: "softmax", threshold: 0.9))
/// let line = try await cascade.infer(["x": image])   // line.path: .fast or .main
/// ```
public final class Cascade: @unchecked Sendable {
    private let native: NativeCascade

    /// The cascade a calibrated manifest describes (`cascade.json` from `cargo xtask cascade calibrate`): both
    /// models, loaded with `config`, and the gate at the threshold chosen on labelled inputs.
    public init(manifest path: String, config: EngineConfig = .default) throws {
        native = try NativeCascade.fromManifest(path: path, config: config)
    }

    public init(fast: Engine, main: Engine, gate: Gate) throws {
        switch gate {
        case let .builtin(confidence, output, threshold, logits):
            native = try NativeCascade.builtin(fast: fast.native, main: main.native, confidence: confidence,
                                               output: output, threshold: threshold, logits: logits)
        case let .custom(escalate):
            native = try NativeCascade.custom(fast: fast.native, main: main.native, gate: ClosureGate(escalate))
        }
    }

    /// Runs on the calling thread; prefer `infer` from async code.
    public func inferSync(_ inputs: [String: Tensor], priority: Priority = .normal,
                          cancel: CancelToken? = nil) throws -> CascadeResult {
        try run(inputs, priority: priority, timeoutMicros: nil, cancel: cancel)
    }

    /// `inferSync` with a deadline `deadline` from now, as `Engine.inferSync(_:priority:deadline:cancel:)`.
    @available(iOS 16, macOS 13, *)
    public func inferSync(_ inputs: [String: Tensor], priority: Priority = .normal, deadline: Duration,
                          cancel: CancelToken? = nil) throws -> CascadeResult {
        try run(inputs, priority: priority, timeoutMicros: Engine.micros(deadline), cancel: cancel)
    }

    public func infer(_ inputs: [String: Tensor], priority: Priority = .normal) async throws -> CascadeResult {
        try await NativeWork.cancellable { [self] token in try self.run(inputs, priority: priority, timeoutMicros: nil, cancel: token) }
    }

    /// `infer` with a deadline `deadline` from now (`EngineError.DeadlineExceeded` past it; never a late result).
    @available(iOS 16, macOS 13, *)
    public func infer(_ inputs: [String: Tensor], priority: Priority = .normal, deadline: Duration) async throws -> CascadeResult {
        let micros = Engine.micros(deadline)
        return try await NativeWork.cancellable { [self] token in
            try self.run(inputs, priority: priority, timeoutMicros: micros, cancel: token)
        }
    }


    /// Closes the cascade: later runs throw `EngineError.EngineClosed`. Engines it loaded from a manifest are
    /// released now; engines you gave it stay yours to close. Closing twice is fine.
    public func close() { native.release() }

    public var isClosed: Bool { native.isClosed() }

    public var counters: CascadeCounters { native.counters() }

    private func run(_ inputs: [String: Tensor], priority: Priority, timeoutMicros: Int64?,
                     cancel: CancelToken?) throws -> CascadeResult {
        let (specs, data) = Engine.pack(inputs)
        let out = try native.run(inputs: specs, data: data,
                                 options: CallOptions(priority: priority, timeoutUs: timeoutMicros, cancel: cancel))
        return CascadeResult(outputs: Outputs(out.outputs), path: out.path, confidence: out.confidence)
    }
}

/// A Swift closure as the native gate.
private final class ClosureGate: CascadeGate, @unchecked Sendable {
    private let escalate: @Sendable (Outputs) -> Bool
    init(_ escalate: @escaping @Sendable (Outputs) -> Bool) { self.escalate = escalate }
    func escalate(outputs: [NativeTensor]) -> Bool { escalate(Outputs(outputs)) }
}
