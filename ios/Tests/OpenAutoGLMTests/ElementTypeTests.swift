import Foundation
import XCTest
@testable import OpenAutoGLM

/// Every element type goes in and comes back unchanged through an Identity model.
final class ElementTypeTests: XCTestCase {
    private func roundTrip<T: TensorElement & Equatable>(_ tag: String, _ values: [T]) throws {
        // Element types exactly as the model declares them (float16 outputs not widened to float32).
        var config = EngineConfig.default
        config.f16OutputsAsF32 = false
        let engine = try Engine(path: Fixtures.model("identity_\(tag)"), config: config)
        let out = try engine.inferSync(["x": Tensor(values, shape: [2, 3])])["y"]!
        XCTAssertEqual(out.elementType, T.elementType)
        XCTAssertEqual(out.shape, [2, 3])
        XCTAssertEqual(try out.values(as: T.self), values)
    }

    func testF32() throws { try roundTrip("f32", [1.5, -2, 0, Float.greatestFiniteMagnitude, Float.leastNonzeroMagnitude, -0.25] as [Float]) }
    func testF64() throws { try roundTrip("f64", [1e300, -1e-300, 0, 3.25, -7, 42] as [Double]) }
    func testI8() throws { try roundTrip("i8", [-128, -1, 0, 1, 64, 127] as [Int8]) }
    func testU8() throws { try roundTrip("u8", [0, 1, 127, 128, 200, 255] as [UInt8]) }
    func testI16() throws { try roundTrip("i16", [.min, -1, 0, 1, 1000, .max] as [Int16]) }
    func testU16() throws { try roundTrip("u16", [0, 1, 255, 256, 40000, .max] as [UInt16]) }
    func testI32() throws { try roundTrip("i32", [.min, -1, 0, 1, 123456, .max] as [Int32]) }
    func testU32() throws { try roundTrip("u32", [0, 1, 7, 1 << 31, 99, .max] as [UInt32]) }
    func testI64() throws { try roundTrip("i64", [.min, -1, 0, 1, 1 << 40, .max] as [Int64]) }
    func testU64() throws { try roundTrip("u64", [0, 1, 7, 1 << 63, 99, .max] as [UInt64]) }

    func testF16() throws {
        #if !(os(macOS) && arch(x86_64))
        try roundTrip("f16", [1, -2, 0.5, 65504, 0, -0.25] as [Float16])
        #endif
    }

    func testBool() throws {
        let engine = try Engine(path: Fixtures.model("identity_bool"))
        let values = [true, false, false, true, true, false]
        let out = try engine.inferSync(["x": Tensor(values, shape: [2, 3])])["y"]!
        XCTAssertEqual(try out.bools(), values)
    }

    func testReadingTheWrongTypeIsATypedError() throws {
        let tensor = try Tensor([1, 2] as [Float], shape: [2])
        XCTAssertThrowsError(try tensor.values(as: Int64.self)) { error in
            XCTAssertEqual(error as? TensorError, .typeMismatch(holds: .f32, requested: .i64))
        }
    }
}
