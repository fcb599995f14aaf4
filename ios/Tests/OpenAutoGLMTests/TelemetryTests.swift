import Foundation
import XCTest
@testable import OpenAutoGLM

/// ONNX Runtime's telemetry stays off unless the app opts in. `cargo xtask test` runs these tests with an empty
/// XDG_CACHE_HOME, where Microsoft's ONNX Runtime build keeps its telemetry store: after engines ran in this process,
/// it must hold no event. (The Rust telemetry test also shows an opted-in process records.)
final class TelemetryTests: XCTestCase {
    func testTelemetryIsOffByDefaultAndRecordsNothing() throws {
        XCTAssertFalse(Runtime.telemetryEnabled)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        let y: [Float] = try engine.inferSync(["x": try Tensor([0.5, -1, 2, 4] as [Float], shape: [1, 4])])["y"]!.values()
        XCTAssertEqual(y.count, 3)
        // Too late to opt in once the runtime is loaded: a typed error, and still off.
        guard case .InvalidConfig? = engineError({ try Runtime.setTelemetry(true) }) else {
            return XCTFail("expected InvalidConfig")
        }
        XCTAssertFalse(Runtime.telemetryEnabled)
        try Runtime.setTelemetry(false)
        let home = try XCTUnwrap(ProcessInfo.processInfo.environment["XDG_CACHE_HOME"], "run `cargo xtask test`")
        let store = URL(fileURLWithPath: home).appendingPathComponent("Microsoft/DeveloperTools/.onnxruntime")
        let files = (try? FileManager.default.contentsOfDirectory(at: store, includingPropertiesForKeys: nil)) ?? []
        let marker = Data("ProcessInfo".utf8)
        let recorded = files.filter { (try? Data(contentsOf: $0))?.range(of: marker) != nil }
        XCTAssertEqual(recorded.map(\.lastPathComponent), [], "ONNX Runtime recorded telemetry events in \(store.path)")
    }
}
