import Foundation
import XCTest
@testable import OpenAutoGLM

/// Every kind of bad input gives its typed error, and the engine keeps working afterwards.
final class BadInputTests: XCTestCase {
    private var engine: Engine!
    private let good = ["x": try! Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])]

    override func setUpWithError() throws { engine = try Engine(path: Fixtures.model("matmul_dynamic")) }

    override func tearDownWithError() throws {
        XCTAssertEqual(try engine.inferSync(good)["y"]!.count, 3)
        engine.close()
    }

    private func tempFile(_ bytes: Data) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("openautoglm-\(UUID().uuidString).onnx").path
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    private func badInput(_ inputs: [String: Tensor], name: String, file: StaticString = #filePath, line: UInt = #line) {
        let error = engineError(file: file, line: line) { _ = try self.engine.inferSync(inputs) }
        XCTAssertEqual(error?.invalidInput?.name, name, "\(String(describing: error))", file: file, line: line)
    }

    func testMissingFile() {
        XCTAssertEqual(engineError { _ = try Engine(path: "/no/such/model.onnx") }, .ModelNotFound(path: "/no/such/model.onnx"))
    }

    func testEmptyFile() throws {
        let path = try tempFile(Data())
        XCTAssertEqual(engineError { _ = try Engine(path: path) }?.isInvalidModel, true)
    }

    func testTruncatedModel() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.model("matmul_dynamic")))
        let half = bytes.prefix(bytes.count / 2)
        XCTAssertEqual(engineError { _ = try Engine(path: try tempFile(half)) }?.isInvalidModel, true)
        XCTAssertEqual(engineError { _ = try Engine(modelData: half) }?.isInvalidModel, true)
    }

    func testNotAnOnnxFile() throws {
        let path = try tempFile(Data("hello, I am not a model\n".utf8))
        XCTAssertEqual(engineError { _ = try Engine(path: path) }?.isInvalidModel, true)
        XCTAssertEqual(engineError { _ = try Engine(modelData: Data()) }?.isInvalidModel, true)
    }

    func testWrongInputName() { badInput(["z": good["x"]!], name: "z") }
    func testMissingInput() { badInput([:], name: "x") }
    func testExtraInput() { badInput(["x": good["x"]!, "extra": try! Tensor([1] as [Float], shape: [1])], name: "extra") }

    func testWrongElementType() {
        let error = engineError { _ = try self.engine.inferSync(["x": try Tensor([1, 2, 3, 4] as [Int64], shape: [1, 4])]) }
        let reason = error?.invalidInput?.reason ?? ""
        XCTAssertTrue(reason.contains("f32") && reason.contains("i64"), reason)
    }

    func testWrongRank() { badInput(["x": try! Tensor([1, 2, 3, 4] as [Float], shape: [4])], name: "x") }
    func testWrongFixedDim() { badInput(["x": try! Tensor([Float](repeating: 0, count: 5), shape: [1, 5])], name: "x") }

    /// A tensor whose data does not fill its shape is refused where it is built, not later at inference.
    func testDataLengthNotMatchingShapeFailsAtConstruction() {
        for build in [
            { try Tensor([Float](repeating: 0, count: 6), shape: [2, 4]) },
            { try Tensor(elementType: .f32, shape: [1, 4], data: Data(count: 15)) },
            { try Tensor(elementType: .f32, shape: [1, 4], data: Data(count: 12)) },
            { try Tensor([Float](repeating: 0, count: 4), shape: [-1, 4]) },
            { try Tensor([Float](repeating: 0, count: 4), shape: [Int.max, 2]) },
        ] {
            XCTAssertThrowsError(try build()) { error in
                guard case EngineError.InvalidInput(let name, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(name, "tensor")
                XCTAssertFalse(reason.isEmpty)
            }
        }
        XCTAssertNoThrow(try Tensor([Float](repeating: 0, count: 8), shape: [2, 4]))
        XCTAssertNoThrow(try Tensor([Float](), shape: [0, 4]))
    }

    func testZeroSizeTensorRuns() throws {
        let y = try engine.inferSync(["x": Tensor([Float](), shape: [0, 4])])["y"]!
        XCTAssertEqual(y.shape, [0, 3])
        XCTAssertEqual(try y.values(as: Float.self), [])
    }

    func testNanValuesAreAllowed() throws {
        let y: [Float] = try engine.inferSync(["x": Tensor([.nan, 1, 2, 3] as [Float], shape: [1, 4])])["y"]!.values()
        XCTAssertTrue(y.allSatisfy(\.isNaN))
    }

    func testErrorMessagesNeverCarryTensorContents() {
        let error = engineError { _ = try self.engine.inferSync(["x": Tensor([123.456, 789.25, 1] as [Float], shape: [1, 3])]) }
        XCTAssertNotNil(error?.invalidInput)
        let text = String(describing: error) + (error?.errorDescription ?? "")
        XCTAssertFalse(text.contains("123.456") || text.contains("789.25"), text)
    }
}
