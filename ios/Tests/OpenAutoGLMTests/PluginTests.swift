import Foundation
import XCTest
@testable import OpenAutoGLM

/// A plugin execution provider from Swift: Intel's OpenVINO plugin (PyPI `onnxruntime-ep-openvino`). It offers
/// devices only on an Intel CPU, so `cargo xtask test` runs this class on its own under `qemu-x86_64 -cpu
/// Skylake-Client` on other hosts (the other classes run natively, where it offers none).
final class PluginTests: XCTestCase {
    private var temp: URL!
    private var plugin: String { Fixtures.env("OPENAUTOGLM_OPENVINO_PLUGIN") }
    private var openVino: Accelerator { .openVino(library: plugin) }

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("openautoglm-plugin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temp)
    }

    private func config(_ accelerators: [Accelerator], _ change: (inout EngineConfig) -> Void = { _ in }) -> EngineConfig {
        var config = EngineConfig.default
        config.accelerators = accelerators
        change(&config)
        return config
    }

    private func run(_ engine: Engine, _ x: [Float], rows: Int) throws -> [Float] {
        try engine.inferSync(["x": Tensor(x, shape: [rows, 4])])["y"]!.values()
    }

    private func cosine(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
        return dot / max((na * nb).squareRoot(), Double.leastNormalMagnitude)
    }

    /// Runs `model` on OpenVINO and on the CPU provider with the same inputs; returns each one's `output`.
    private func onBoth(_ model: String, _ inputs: [String: Tensor], _ output: String) throws -> (AcceleratorReport, [Float], [Float]) {
        let ov = try Engine(path: Fixtures.realModel(model), config: config([openVino]))
        let cpu = try Engine(path: Fixtures.realModel(model), config: config([.cpu]))
        return (ov.accelerators, try ov.inferSync(inputs)[output]!.values(), try cpu.inferSync(inputs)[output]!.values())
    }

    func testRealModelsOnOpenVinoMatchTheCpuProvider() throws {
        let ids = (Fixtures.expected("minilm-l6-int8")["input_ids"] as! [NSNumber]).map(\.int64Value)
        let text: [String: Tensor] = [
            "input_ids": try Tensor(ids, shape: [1, ids.count]),
            "attention_mask": try Tensor([Int64](repeating: 1, count: ids.count), shape: [1, ids.count]),
            "token_type_ids": try Tensor([Int64](repeating: 0, count: ids.count), shape: [1, ids.count]),
        ]
        let (miniLm, ovText, cpuText) = try onBoth("minilm-l6-int8", text, "last_hidden_state")
        XCTAssertEqual(miniLm.active.first, Accelerator.openVinoProvider)
        XCTAssertGreaterThanOrEqual(cosine(ovText, cpuText), 0.99)
        let pixels = (0..<(3 * 320 * 320)).map { Float((Int64($0) * 7919) % 255) / 255 }
        let (yolo, ovBoxes, cpuBoxes) = try onBoth("yolov8n-320", ["images": try Tensor(pixels, shape: [1, 3, 320, 320])], "output0")
        XCTAssertEqual(yolo.active.first, Accelerator.openVinoProvider)
        XCTAssertGreaterThanOrEqual(cosine(ovBoxes, cpuBoxes), 0.99)
        // Silero VAD: OpenVINO takes it and cannot compile its dynamic-rank branches; the CPU runs it, and says why.
        let audio: [String: Tensor] = [
            "input": try Tensor((0..<512).map { sin(Float($0) * 0.05) * 0.3 }, shape: [1, 512]),
            "state": try Tensor([Float](repeating: 0, count: 256), shape: [2, 1, 128]),
            "sr": try Tensor([Int64(16000)], shape: []),
        ]
        let (vad, ovSpeech, cpuSpeech) = try onBoth("silero-vad", audio, "output")
        XCTAssertEqual(vad.active, ["CPUExecutionProvider"])
        XCTAssertTrue(vad.skipped.contains { $0.provider == Accelerator.openVinoProvider && $0.reason.contains("could not compile") })
        XCTAssertEqual(ovSpeech, cpuSpeech)
    }

    func testAMissingPluginLibraryIsATypedError() {
        let missing = Accelerator.openVino(library: "/no/such/libonnxruntime_providers_openvino_plugin.so")
        let error = engineError { _ = try Engine(path: Fixtures.model("matmul_dynamic"), config: self.config([missing])) }
        guard case let .AcceleratorUnavailable(provider, reason)? = error else {
            return XCTFail("expected AcceleratorUnavailable, got \(String(describing: error))")
        }
        XCTAssertEqual(provider, Accelerator.openVinoProvider)
        XCTAssertTrue(reason.contains("/no/such"), reason)
    }

    func testOpenVinoRunsTheModelAndPlacementShowsWhatFellBackToTheCpu() throws {
        let x: [Float] = [0.5, -1, 2, 4]
        let want = try run(try Engine(path: Fixtures.model("matmul_dynamic")), x, rows: 1)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config([openVino]))
        XCTAssertEqual(engine.accelerators.active, [Accelerator.openVinoProvider, "CPUExecutionProvider"])
        let got = try run(engine, x, rows: 1)
        for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-4) }
        let partial = try Engine(path: Fixtures.model("accelerator_fallback"), config: config([openVino]) { $0.reportPlacement = true })
        let providers = Dictionary(uniqueKeysWithValues: try XCTUnwrap(partial.placement).providers.map { ($0.provider, $0.nodes) })
        XCTAssertGreaterThanOrEqual(providers[Accelerator.openVinoProvider] ?? 0, 1, "\(providers)")
        XCTAssertGreaterThanOrEqual(providers["CPUExecutionProvider"] ?? 0, 1, "Det runs on the CPU: \(providers)")
    }

    func testStrictModeRefusesPartialPlacementAndAnAbsentDevice() throws {
        let partial = engineError {
            _ = try Engine(path: Fixtures.model("accelerator_fallback"), config: self.config([self.openVino]) { $0.strict = true })
        }
        guard case let .InvalidConfig(reason)? = partial else { return XCTFail("expected InvalidConfig, got \(String(describing: partial))") }
        XCTAssertTrue(reason.contains("strict mode"), reason)
        let whole = try Engine(path: Fixtures.model("matmul_dynamic"), config: config([openVino]) { $0.strict = true })
        XCTAssertEqual(whole.accelerators.active.first, Accelerator.openVinoProvider)
        let npu = Accelerator.openVino(library: plugin, device: .npu)
        let absent = engineError {
            _ = try Engine(path: Fixtures.model("matmul_dynamic"), config: self.config([npu]) { $0.strict = true })
        }
        guard case let .InvalidConfig(why)? = absent else { return XCTFail("expected InvalidConfig, got \(String(describing: absent))") }
        XCTAssertTrue(why.contains("no Npu device"), why)
        let skipped = try Engine(path: Fixtures.model("matmul_dynamic"), config: config([npu]))
        XCTAssertEqual(skipped.accelerators.active, ["CPUExecutionProvider"])
        XCTAssertTrue(skipped.accelerators.skipped[0].reason.contains("no Npu device"))
    }

    func testOpenVinoCompilesIntoTheEngineCache() throws {
        let cached = config([openVino]) { $0.cacheDir = self.temp.appendingPathComponent("cache").path }
        let x: [Float] = [1, 2, 3, 4]
        let first = try Engine(path: Fixtures.model("matmul_dynamic"), config: cached)
        XCTAssertEqual(first.compileCache, .miss)
        let want = try run(first, x, rows: 1)
        let blobs = try FileManager.default.contentsOfDirectory(atPath: temp.appendingPathComponent("cache/openvino").path)
        XCTAssertFalse(blobs.isEmpty, "OpenVINO's compiled blob")
        let again = try Engine(path: Fixtures.model("matmul_dynamic"), config: cached)
        XCTAssertEqual(again.compileCache, .hit)
        XCTAssertEqual(again.accelerators.active.first, Accelerator.openVinoProvider)
        XCTAssertEqual(try run(again, x, rows: 1), want)
    }

    func testVerdictsHoldOnlyOnThePluginsOwnClass() throws {
        let openVinoClass = Runtime.numericsClass(for: openVino)
        XCTAssertEqual(openVinoClass, "linux-x86_64-openvino")
        let cpuClass = Runtime.numericsClass(for: .cpu)
        // FP16 passed on OpenVINO only, INT8 on the CPU only: each runs only where it passed.
        let bundle = temp.appendingPathComponent("bundle")
        try FileManager.default.createDirectory(at: bundle, withIntermediateDirectories: true)
        for file in ["fp32.onnx", "fp16.onnx", "int8-qdq.onnx"] {
            try FileManager.default.copyItem(atPath: Fixtures.model("matmul_dynamic"), toPath: bundle.appendingPathComponent(file).path)
        }
        func verdict(_ passed: Bool) -> String {
            "{\"passed\": \(passed), \"set\": \"test\", \"inputs\": 20, \"worst_score\": 0.9, \"threshold\": 0.99}"
        }
        let manifest = """
            {"format": 1, "model": "matmul", "variants": [
              {"precision": "fp32", "file": "fp32.onnx", "accurate": true},
              {"precision": "fp16", "file": "fp16.onnx", "accurate": false,
               "verdicts": {"\(cpuClass)": \(verdict(false)), "\(openVinoClass)": \(verdict(true))}},
              {"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": true,
               "verdicts": {"\(cpuClass)": \(verdict(true)), "\(openVinoClass)": \(verdict(false))}}]}
            """
        try manifest.write(to: bundle.appendingPathComponent("bundle.json"), atomically: true, encoding: .utf8)
        let fp16 = try Engine(bundle: bundle.path, config: config([openVino]) { $0.precision = .fp16 })
        XCTAssertEqual(fp16.precision?.file, "fp16.onnx")
        let refused = engineError { _ = try Engine(bundle: bundle.path, config: self.config([self.openVino]) { $0.precision = .int8 }) }
        guard case let .InvalidConfig(reason)? = refused else { return XCTFail("expected InvalidConfig, got \(String(describing: refused))") }
        XCTAssertTrue(reason.contains(openVinoClass), reason)
        let int8 = try Engine(bundle: bundle.path, config: config([.cpu]) { $0.precision = .int8 })
        XCTAssertEqual(int8.precision?.file, "int8-qdq.onnx")
        let auto = try Engine(bundle: bundle.path, config: config([openVino]))
        XCTAssertEqual(auto.precision?.precision, .fp32)
    }
}
