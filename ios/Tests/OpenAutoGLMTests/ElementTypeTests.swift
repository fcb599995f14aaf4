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

    func testBF16AsRawBits() throws {
        let bits = ([1, -2, 0.5, 3.0e38, 0, -0.25] as [Float]).map { UInt16($0.bitPattern >> 16) }
        let engine = try Engine(path: Fixtures.model("identity_bf16"))
        let out = try engine.inferSync(["x": Tensor(bfloat16Bits: bits, shape: [2, 3])])["y"]!
        XCTAssertEqual(out.elementType, .bf16)
        XCTAssertEqual(try out.bfloat16Bits(), bits)
    }

    func testStrings() throws {
        let values = ["", "plain", "héllo wörld", "日本語", "emoji 🙂", "tab\tand\nnewline"]
        let engine = try Engine(path: Fixtures.model("identity_string"))
        let out = try engine.inferSync(["x": Tensor(strings: values, shape: [2, 3])])["y"]!
        XCTAssertEqual(out.elementType, .string)
        XCTAssertEqual(out.shape, [2, 3])
        XCTAssertEqual(try out.strings(), values)
        // The count must match the shape where the tensor is built; a NUL is refused by the engine, which stays usable.
        XCTAssertThrowsError(try Tensor(strings: values, shape: [2, 2]))
        let nul = engineError { _ = try engine.inferSync(["x": Tensor(strings: Array(repeating: "a\u{0}b", count: 6), shape: [2, 3])]) }
        XCTAssertTrue(nul?.invalidInput?.reason.contains("NUL") ?? false, String(describing: nul))
        XCTAssertEqual(try engine.inferSync(["x": Tensor(strings: Array(repeating: "ok", count: 6), shape: [2, 3])])["y"]!.strings(),
                       Array(repeating: "ok", count: 6))
    }

    /// A real string operator from the ONNX node tests, with python onnxruntime's recorded output.
    func testStringConcatMatchesPythonOnnxruntime() throws {
        let url = URL(fileURLWithPath: Fixtures.env("OPENAUTOGLM_TEST_DATA") + "/string_nodes.json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: [String: [[String: Any]]]]
        let name = "test_string_concat_utf8"
        func tensor(_ entry: [String: Any]) throws -> Tensor {
            try Tensor(strings: entry["values"] as! [String], shape: (entry["shape"] as! [NSNumber]).map(\.intValue))
        }
        let engine = try Engine(path: Fixtures.env("OPENAUTOGLM_TEST_DATA") + "/models/node/\(name).onnx")
        var inputs: [String: Tensor] = [:]
        for entry in cases[name]!["inputs"]! { inputs[entry["name"] as! String] = try tensor(entry) }
        let want = try tensor(cases[name]!["outputs"]![0])
        let got = try engine.inferSync(inputs)[0].1
        XCTAssertEqual(try got.strings(), try want.strings())
        XCTAssertEqual(got.shape, want.shape)
    }

    /// A model at an offset inside a larger file, loaded from a descriptor, offset and length.
    func testModelFromFileDescriptorAtAnOffset() throws {
        let model = try Data(contentsOf: URL(fileURLWithPath: Fixtures.model("matmul_dynamic")))
        let path = NSTemporaryDirectory() + "openautoglm-packed-\(getpid()).bin"
        try (Data(repeating: 0x5a, count: 4099) + model + Data("PK-trailer".utf8)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let x = ["x": try Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])]
        let want: [Float] = try Engine(path: Fixtures.model("matmul_dynamic")).inferSync(x)["y"]!.values()
        let engine = try Engine(fileDescriptor: fd, offset: 4099, length: model.count)
        XCTAssertEqual(try engine.inferSync(x)["y"]!.values(as: Float.self), want)
        guard case .ModelNotFound? = engineError({ _ = try Engine(fileDescriptor: -1, offset: 4099, length: model.count) }) else {
            return XCTFail("a bad descriptor")
        }
        guard case .InvalidModel? = engineError({ _ = try Engine(fileDescriptor: fd, offset: 4099, length: model.count + 100) }) else {
            return XCTFail("a region past the end")
        }
        guard case .InvalidModel? = engineError({ _ = try Engine(fileDescriptor: fd, offset: -1, length: model.count) }) else {
            return XCTFail("a negative offset")
        }
    }

    func testReadingTheWrongTypeIsATypedError() throws {
        let tensor = try Tensor([1, 2] as [Float], shape: [2])
        XCTAssertThrowsError(try tensor.values(as: Int64.self)) { error in
            XCTAssertEqual(error as? TensorError, .typeMismatch(holds: .f32, requested: .i64))
        }
    }
}
