import Foundation
import XCTest
@testable import OpenAutoGLM

/// Test data shared with the Rust and Kotlin tests; paths come from `cargo xtask test`.
enum Fixtures {
    static func env(_ name: String) -> String {
        guard let value = ProcessInfo.processInfo.environment[name] else {
            fatalError("\(name) is not set: run the tests with `cargo xtask test`")
        }
        return value
    }

    static func model(_ name: String) -> String { env("OPENAUTOGLM_TEST_DATA") + "/models/\(name).onnx" }
    static func realModel(_ id: String) -> String { env("OPENAUTOGLM_MODELS") + "/\(id).onnx" }

    static let expected: [String: Any] = {
        let url = URL(fileURLWithPath: env("OPENAUTOGLM_TEST_DATA") + "/expected.json")
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    static func expected(_ key: String) -> [String: Any] { expected[key] as! [String: Any] }
}

/// The `EngineError` that `body` throws; fails the test if it throws nothing or something else.
@discardableResult
func engineError(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) -> EngineError? {
    do {
        try body()
        XCTFail("expected an EngineError", file: file, line: line)
    } catch let error as EngineError {
        return error
    } catch {
        XCTFail("expected an EngineError, got \(error)", file: file, line: line)
    }
    return nil
}

extension EngineError {
    var isInvalidModel: Bool { if case .InvalidModel = self { return true }; return false }
    /// The input an `InvalidInput` names, with its reason.
    var invalidInput: (name: String, reason: String)? { if case .InvalidInput(let n, let r) = self { return (n, r) }; return nil }
}
