import Dispatch
import Foundation

/// Where blocking native calls run: a model run, a warmup, one token of a generation. Swift's cooperative thread
/// pool has one thread per core and its threads must never block, so these calls go to the SDK's own concurrent
/// dispatch queue, at the calling task's priority, and `async` callers wait on a checked continuation.
enum NativeWork {
    static let queue = DispatchQueue(label: "ai.openautoglm.native", attributes: .concurrent)
    private static let key: DispatchSpecificKey<Bool> = {
        let key = DispatchSpecificKey<Bool>()
        queue.setSpecific(key: key, value: true)
        return key
    }()

    /// True on the SDK's native queue (what the tests check).
    static var isOnNativeQueue: Bool { DispatchQueue.getSpecific(key: key) ?? false }

    /// Runs `work` on the native queue and returns its result to the awaiting task.
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let qos = qualityOfService(Task.currentPriority)
        _ = key
        return try await withCheckedThrowingContinuation { continuation in
            queue.async(qos: qos) { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Runs `work` on the native queue with a cancel token that cancelling the calling task cancels (engine and
    /// cascade runs): a task cancelled before the call throws `CancellationError` without running anything.
    static func cancellable<T: Sendable>(_ work: @escaping @Sendable (CancelToken) throws -> T) async throws -> T {
        try Task.checkCancellation()
        let token = CancelToken()
        return try await withTaskCancellationHandler {
            try await run { try work(token) }
        } onCancel: {
            token.cancel()
        }
    }

    /// Starts `work` on the native queue without waiting (a generation's token loop).
    static func start(priority: TaskPriority, _ work: @escaping @Sendable () -> Void) {
        _ = key
        queue.async(qos: qualityOfService(priority), execute: work)
    }

    private static func qualityOfService(_ priority: TaskPriority) -> DispatchQoS {
        switch priority {
        case .high, .userInitiated: return .userInitiated
        case .low, .utility: return .utility
        case .background: return .background
        default: return .default
        }
    }
}
