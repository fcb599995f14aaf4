import Foundation
import XCTest
@testable import OpenAutoGLM

/// Placement reports, precision and bundles, float16 I/O, the compile cache and shape buckets, from Swift.
final class AccelerationTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("openautoglm-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temp)
    }

    private func matmul(_ engine: Engine, _ x: [Float]) throws -> [Float] {
        try engine.inferSync(["x": Tensor(x, shape: [x.count / 4, 4])])["y"]!.values()
    }

    private func config(_ change: (inout EngineConfig) -> Void) -> EngineConfig {
        var config = EngineConfig.default
        change(&config)
        return config
    }

    func testPlacementIsReportedWhenAsked() throws {
        XCTAssertNil(try Engine(path: Fixtures.model("matmul_dynamic")).placement)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config { $0.reportPlacement = true })
        let placement = try XCTUnwrap(engine.placement)
        XCTAssertEqual(placement.providers.map(\.provider), ["CPUExecutionProvider"])
        XCTAssertEqual(placement.providers[0].partitions, 1)
        XCTAssertGreaterThanOrEqual(placement.providers[0].nodes, 1)
        XCTAssertEqual(placement.warnings, [])
    }

    func testFloat16ModelsTakeAndGiveFloat32() throws {
        let engine = try Engine(path: Fixtures.model("identity_f16"))
        let x: [Float] = [1.5, -2, 0.25, 65504, 0, -0.5]
        let out = try engine.inferSync(["x": Tensor(x, shape: [2, 3])])["y"]!
        XCTAssertEqual(out.elementType, .f32)
        XCTAssertEqual(try out.values(as: Float.self), x)
        let error = engineError { _ = try engine.inferSync(["x": Tensor([1, 2, 3, 4, 5, 6] as [Int32], shape: [2, 3])]) }
        guard case .InvalidInput(let name, _)? = error else { return XCTFail("expected InvalidInput, got \(String(describing: error))") }
        XCTAssertEqual(name, "x")
    }

    func testCompileCacheMissesThenHitsAndRebuildsDamage() throws {
        let cached = config { $0.cacheDir = temp.path }
        let x: [Float] = [1, 2, 3, 4]
        let first = try Engine(path: Fixtures.model("matmul_dynamic"), config: cached)
        XCTAssertEqual(first.compileCache, .miss)
        let second = try Engine(path: Fixtures.model("matmul_dynamic"), config: cached)
        XCTAssertEqual(second.compileCache, .hit)
        XCTAssertEqual(try matmul(second, x), try matmul(first, x))

        let entries = try FileManager.default.contentsOfDirectory(atPath: temp.path).filter { !$0.hasPrefix(".") }
        XCTAssertEqual(entries.count, 1)
        let model = temp.appendingPathComponent(entries[0]).appendingPathComponent("model.onnx")
        var bytes = try Data(contentsOf: model)
        bytes[bytes.count / 2] ^= 0x55
        try bytes.write(to: model)
        let rebuilt = try Engine(path: Fixtures.model("matmul_dynamic"), config: cached)
        XCTAssertEqual(rebuilt.compileCache, .rebuilt)
        XCTAssertEqual(try matmul(rebuilt, x), try matmul(first, x))
    }

    func testShapeBucketsRouteByShape() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"),
                                config: config { $0.shapeBuckets = [ShapeBucket(dims: ["batch": 2])] })
        let dynamic = try Engine(path: Fixtures.model("matmul_dynamic"))
        let two: [Float] = (0..<8).map { Float($0) * 0.5 }
        let three: [Float] = (0..<12).map { Float($0) * 0.25 }
        XCTAssertEqual(try matmul(engine, two), try matmul(dynamic, two))
        XCTAssertEqual(try matmul(engine, three), try matmul(dynamic, three))
        XCTAssertEqual(engine.shapeBucketStats.bucketRuns, [1])
        XCTAssertEqual(engine.shapeBucketStats.dynamicRuns, 1)

        let error = engineError {
            _ = try Engine(path: Fixtures.model("matmul_dynamic"), config: self.config { $0.shapeBuckets = [ShapeBucket(dims: ["sequence": 8])] })
        }
        guard case .InvalidConfig(let reason)? = error else { return XCTFail("expected InvalidConfig, got \(String(describing: error))") }
        XCTAssertTrue(reason.contains("sequence"), reason)
    }

    /// A bundle of the identity fixtures: FP32 and FP16 variants of one interface.
    private func fixtureBundle() throws -> String {
        for (name, file) in [("identity_f32", "fp32.onnx"), ("identity_f16", "fp16.onnx")] {
            try FileManager.default.copyItem(atPath: Fixtures.model(name), toPath: temp.appendingPathComponent(file).path)
        }
        let manifest = """
            {"format": 1, "model": "identity", "variants": [
              {"precision": "fp32", "file": "fp32.onnx", "accurate": true},
              {"precision": "fp16", "file": "fp16.onnx", "accurate": true}]}
            """
        try manifest.write(to: temp.appendingPathComponent("bundle.json"), atomically: true, encoding: .utf8)
        return temp.path
    }

    func testBundlesChooseAVariantAndSayWhy() throws {
        let bundle = try fixtureBundle()
        let auto = try Engine(bundle: bundle)
        XCTAssertEqual(auto.precision?.file, "fp32.onnx")
        XCTAssertTrue(auto.precision?.reason.hasPrefix("auto") ?? false)
        let fp16 = try Engine(bundle: bundle, config: config { $0.precision = .fp16 })
        XCTAssertEqual(fp16.precision?.precision, .fp16)
        let x: [Float] = [1, 2, 3, 4, 5, 6]
        XCTAssertEqual(try fp16.inferSync(["x": Tensor(x, shape: [2, 3])])["y"]!.values(as: Float.self), x)

        let missing = engineError { _ = try Engine(bundle: bundle, config: self.config { $0.precision = .int8 }) }
        guard case .InvalidConfig? = missing else { return XCTFail("expected InvalidConfig, got \(String(describing: missing))") }
        let none = engineError { _ = try Engine(bundle: self.temp.appendingPathComponent("none").path) }
        guard case .ModelNotFound? = none else { return XCTFail("expected ModelNotFound, got \(String(describing: none))") }
    }

    /// FP16 judged on two numerics classes with opposite verdicts: the one this engine computes on decides.
    func testAVerdictHoldsOnlyOnTheNumericsClassItWasTakenOn() throws {
        let bundle = try fixtureBundle()
        let here = Runtime.numericsClass(for: .cpu)
        XCTAssertTrue(here.hasPrefix("linux-") && here.hasSuffix("-cpu"), here)
        let elsewhere = here.contains("aarch64") ? "linux-x86_64-cpu" : "linux-aarch64-cpu"
        func judged(passesOn: String, failsOn: String) throws {
            let manifest = """
                {"format": 1, "model": "identity", "variants": [
                  {"precision": "fp32", "file": "fp32.onnx", "accurate": true},
                  {"precision": "fp16", "file": "fp16.onnx", "accurate": true, "verdicts": {
                    "\(passesOn)": {"passed": true, "set": "test", "inputs": 24, "worst_score": 0.9995, "threshold": 0.99},
                    "\(failsOn)": {"passed": false, "set": "test", "inputs": 24, "worst_score": 0.41, "threshold": 0.99}}}]}
                """
            try manifest.write(to: temp.appendingPathComponent("bundle.json"), atomically: true, encoding: .utf8)
        }
        try judged(passesOn: elsewhere, failsOn: here)
        let refused = engineError { _ = try Engine(bundle: bundle, config: self.config { $0.precision = .fp16 }) }
        guard case .InvalidConfig(let reason)? = refused else {
            return XCTFail("expected InvalidConfig, got \(String(describing: refused))")
        }
        XCTAssertTrue(reason.contains(here) && reason.contains("0.4100"), reason)
        XCTAssertEqual(try Engine(bundle: bundle).precision?.file, "fp32.onnx")
        try judged(passesOn: here, failsOn: elsewhere)
        let fp16 = try Engine(bundle: bundle, config: config { $0.precision = .fp16 })
        XCTAssertEqual(fp16.precision?.file, "fp16.onnx")
        XCTAssertEqual(fp16.precision?.reason, "requested")
    }

    func testAutoFollowsMeasurementsAndNeverPicksAFailedVariant() throws {
        for file in ["fp32.onnx", "int8-qdq.onnx", "int8-mixed.onnx"] {
            try FileManager.default.copyItem(atPath: Fixtures.model("identity_f32"), toPath: temp.appendingPathComponent(file).path)
        }
        let here = Runtime.deviceClass(for: .cpu)
        func manifest(fp32Ms: Double) -> String {
            func measured(_ ms: Double) -> String { "{\"\(here)\": {\"mean_ms\": \(ms)}}" }
            return """
            {"format": 1, "variants": [
              {"precision": "fp32", "file": "fp32.onnx", "accurate": true, "measured": \(measured(fp32Ms))},
              {"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": false, "measured": \(measured(1))},
              {"precision": "int8-mixed", "file": "int8-mixed.onnx", "accurate": true, "measured": \(measured(2))}]}
            """
        }
        let path = temp.appendingPathComponent("bundle.json")
        try manifest(fp32Ms: 4).write(to: path, atomically: true, encoding: .utf8)
        let choice = try XCTUnwrap(try Engine(bundle: temp.path).precision)
        XCTAssertEqual(choice.file, "int8-mixed.onnx", choice.reason)
        XCTAssertEqual(choice.precision, .int8)
        XCTAssertTrue(choice.reason.contains(here) && choice.reason.contains("fp32 2.00x"), choice.reason)
        // FP32 measured fastest wins; the failed variant stays out though it is faster still.
        try manifest(fp32Ms: 1.5).write(to: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Engine(bundle: temp.path).precision?.file, "fp32.onnx")
    }
}
