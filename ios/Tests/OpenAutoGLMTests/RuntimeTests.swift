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
        let info = try Runtime.load(libraryPath: Fixtures.env("ORT_DYLIB_PATH"))
        XCTAssertTrue(info.ortVersion.hasPrefix("1."), info.ortVersion)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        XCTAssertEqual(engine.info.inputs.count, 1)
    }
}
