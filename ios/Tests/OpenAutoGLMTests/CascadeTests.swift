import Foundation
import XCTest
@testable import OpenAutoGLM

/// Cascades from Swift: built-in and closure gates, counters, options reaching both engines, typed errors.
final class CascadeTests: XCTestCase {
    private let sure: [Float] = [0.9, 0.05, 0.05, 0.8, 0.1, 0.1]
    private let unsure: [Float] = [0.9, 0.05, 0.05, 0.4, 0.35, 0.25]
    private func identity() throws -> Engine { try Engine(path: Fixtures.model("identity_f32")) }
    private func input(_ values: [Float]) throws -> [String: Tensor] { ["x": try Tensor(values, shape: [2, 3])] }

    func testABuiltInGateRoutesAndCounts() async throws {
        let cascade = try Cascade(fast: identity(), main: identity(), gate: .builtin(.topProbability, output: "y", threshold: 0.7))
        let first = try await cascade.infer(input(sure))
        XCTAssertEqual(first.path, .fast)
        XCTAssertEqual(first.confidence ?? 0, 0.8, accuracy: 1e-6)
        let second = try await cascade.infer(input(unsure))
        XCTAssertEqual(second.path, .main)
        XCTAssertEqual(try second.outputs["y"]!.values(as: Float.self), unsure)
        let counters = cascade.counters
        XCTAssertEqual(counters.inputs, 2)
        XCTAssertEqual(counters.escalations, 1)
        XCTAssertGreaterThan(counters.mainMs, 0)
    }

    func testAClosureGateDecides() throws {
        let cascade = try Cascade(fast: identity(), main: identity(), gate: .custom { outputs in
            ((try? outputs["y"]!.values(as: Float.self))?.first ?? 0) < 0.5
        })
        XCTAssertEqual(try cascade.inferSync(input(sure)).path, .fast)
        let low = try cascade.inferSync(input([Float](repeating: 0.1, count: 6)))
        XCTAssertEqual(low.path, .main)
        XCTAssertNil(low.confidence)
    }

    func testBadSetUpsAndInputsAreTyped() throws {
        let fast = try identity()
        XCTAssertThrowsError(try Cascade(fast: fast, main: Engine(path: Fixtures.model("multi_io")), gate: .custom { _ in false })) {
            guard case .InvalidConfig? = $0 as? EngineError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try Cascade(fast: fast, main: identity(), gate: .builtin(.entropy, output: "nope", threshold: 0.5))) {
            guard case let .InvalidConfig(reason)? = $0 as? EngineError else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("nope"), reason)
        }
        let cascade = try Cascade(fast: fast, main: identity(), gate: .builtin(.margin, output: "y", threshold: 0.5))
        XCTAssertThrowsError(try cascade.inferSync(["x": Tensor([Float](repeating: 0, count: 9), shape: [3, 3])])) {
            guard case .InvalidInput? = $0 as? EngineError else { return XCTFail("\($0)") }
        }
        let cancelled = CancelToken()
        cancelled.cancel()
        XCTAssertThrowsError(try cascade.inferSync(input(sure), cancel: cancelled)) {
            guard case .Cancelled? = $0 as? EngineError else { return XCTFail("\($0)") }
        }
    }

    /// A passed deadline is DeadlineExceeded; closing is EngineClosed afterwards, and the app's engines stay open.
    func testDeadlinesAndCloseAreTheEngines() throws {
        let fast = try identity(), main = try identity()
        let cascade = try Cascade(fast: fast, main: main, gate: .builtin(.topProbability, output: "y", threshold: 0.7))
        XCTAssertThrowsError(try cascade.inferSync(input(sure), deadline: .zero)) {
            guard case .DeadlineExceeded? = $0 as? EngineError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try cascade.inferSync(input(sure), deadline: .seconds(10)).path, .fast)
        cascade.close()
        cascade.close()
        XCTAssertTrue(cascade.isClosed)
        XCTAssertThrowsError(try cascade.inferSync(input(sure))) {
            guard case .EngineClosed? = $0 as? EngineError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(cascade.counters.inputs, 1, "counters survive close")
        XCTAssertFalse(fast.isClosed || main.isClosed, "the app's engines stay open")
    }
}
