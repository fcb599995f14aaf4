import Foundation
import XCTest
@testable import OpenAutoGLM

final class RuntimeTests: XCTestCase {
    /// A missing library is a typed error naming the path, whether or not a runtime is loaded already, and the
    /// runtime still loads (or keeps working) afterwards.
    func testMissingRuntimeLibraryIsTypedAndRecoverable() throws {
        let error = engineError { try Runtime.load(libraryPath: "/no/such/libonnxruntime.so") }
        guard case .RuntimeUnavailable(let path, _)? = error else { return XCTFail("expected RuntimeUnavailable, got \(String(describing: error))") }
        XCTAssertEqual(path, "/no/such/libonnxruntime.so")
        // What Swift prints for the error (at top level too: String(reflecting:)) is a sentence naming the Swift call.
        for text in [String(describing: error!), String(reflecting: error!), error!.localizedDescription] {
            XCTAssertTrue(text.contains("Runtime.load(libraryPath:)"), text)
            XCTAssertFalse(text.contains("Runtime::init"), text)
            XCTAssertTrue(text.hasPrefix("ONNX Runtime is unavailable (tried `/no/such/libonnxruntime.so`)"), text)
        }
        let info = try Runtime.load(libraryPath: Fixtures.env("ORT_DYLIB_PATH"))
        XCTAssertTrue(info.ortVersion.hasPrefix("1."), info.ortVersion)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        XCTAssertEqual(engine.info.inputs.count, 1)
    }

    /// An ONNX Runtime older than a feature needs is its own case, and says both versions (the Rust and Kotlin tests
    /// load a real 1.20.1; one Swift test process has one runtime, already loaded here).
    func testRuntimeTooOldNamesTheFeatureAndBothVersions() {
        let error = EngineError.RuntimeTooOld(feature: "plugin execution providers", required: "1.22", loaded: "1.20.1")
        let text = String(describing: error)
        XCTAssertTrue(text.hasPrefix("plugin execution providers needs ONNX Runtime >= 1.22, but the one loaded is 1.20.1"), text)
    }
}
