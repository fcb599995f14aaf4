import Foundation
import XCTest
@testable import OpenAutoGLM

/// What the Swift layer checks itself before the engine sees a call: counts that would trap in a conversion, and
/// tasks already cancelled.
final class UntrustedInputTests: XCTestCase {
    private let input = ["x": Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])]

    func testWarmupRunCountsOutOfRangeAreTypedErrors() async throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        for runs in [-1, Int(UInt32.max) + 1, 1001] {
            do {
                try await engine.warmup(runs: runs)
                XCTFail("warmup(runs: \(runs)) was accepted")
            } catch let error as EngineError {
                guard case .InvalidConfig(let reason) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(reason.contains("\(runs)"), reason)
            }
        }
        let times = try await engine.warmup(runs: 2)
        XCTAssertEqual(times.count, 2)
    }

    func testACancelledTaskDoesNotRunTheModel() async throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        let input = self.input
        let task = Task {
            while !Task.isCancelled { await Task.yield() }
            return try await engine.infer(input)
        }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("a cancelled task ran the model")
        } catch is CancellationError {}
        let warmup = Task {
            while !Task.isCancelled { await Task.yield() }
            return try await engine.warmup(runs: 1)
        }
        warmup.cancel()
        do {
            _ = try await warmup.value
            XCTFail("a cancelled task warmed up the model")
        } catch is CancellationError {}
        XCTAssertEqual(engine.shapeBucketStats.dynamicRuns, 0, "no run reached the engine")
        _ = try await engine.infer(input)
        XCTAssertEqual(engine.shapeBucketStats.dynamicRuns, 1)
    }

    func testLogLevelIsSettable() throws {
        let before = Runtime.logLevel
        Runtime.logLevel = .error
        XCTAssertEqual(Runtime.logLevel, .error)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        XCTAssertEqual(engineError { _ = try engine.inferSync([:]) }?.invalidInput?.name, "x")
        Runtime.logLevel = before
    }
}
