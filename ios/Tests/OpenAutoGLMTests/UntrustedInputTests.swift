import Foundation
import XCTest
@testable import OpenAutoGLM

/// What the Swift layer checks itself before the engine sees a call (counts that would trap in a conversion, tasks
/// already cancelled), and the engine's own limits as Swift sees them (external data, the memory limit).
final class UntrustedInputTests: XCTestCase {
    private let input = ["x": try! Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])]

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

    func testExternalDataOfAModelFromBytesNeedsANamedDirectory() throws {
        let dir = Fixtures.env("OPENAUTOGLM_TEST_DATA") + "/external"
        let model = try Data(contentsOf: URL(fileURLWithPath: dir + "/model.onnx"))
        XCTAssertEqual(engineError { _ = try Engine(modelData: model) }?.isInvalidModel, true)
        var config = EngineConfig.default
        config.externalDataDir = dir
        let engine = try Engine(modelData: model, config: config)
        let y: [UInt8] = try engine.inferSync([:])["y"]!.values()
        XCTAssertEqual(y, Array(0..<16))
    }

    func testOutputsOverTheMemoryLimitAreTypedErrors() throws {
        var config = EngineConfig.default
        config.memoryLimitMb = 1
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config)
        let rows = 100_000
        let x = try Tensor([Float](repeating: 0, count: rows * 4), shape: [rows, 4])
        let error = engineError { _ = try engine.inferSync(["x": x]) }
        guard case .MemoryLimit(let reason)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue(reason.contains("output `y`"), reason)
    }
}
