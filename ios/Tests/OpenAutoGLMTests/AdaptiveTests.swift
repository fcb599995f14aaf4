import Foundation
import XCTest
@testable import OpenAutoGLM

/// Speculative generation and calibrated cascades from Swift.
final class AdaptiveTests: XCTestCase {
    private func tiny() throws -> Llm {
        var config = EngineConfig.default
        config.intraOpThreads = 1
        return try Llm(directory: Fixtures.env("OPENAUTOGLM_LLMS") + "/smollm2-tiny", config: config)
    }

    private func run(_ llm: Llm, _ prompt: String, _ options: GenerateOptions) async throws -> (String, GenerationMetrics) {
        let box = MetricsBox()
        var text = ""
        for try await piece in llm.generate(prompt, options: options, onFinish: { m, _ in box.set(m) }) { text += piece }
        return (text, box.get()!)
    }

    func testADraftModelKeepsTheModelsOwnGreedyAnswer() async throws {
        let target = try tiny()
        let drafted = try target.withDraft(try tiny())
        XCTAssertEqual(drafted.draftFile, "fp32.onnx")
        XCTAssertNil(target.draftFile)
        let (plain, plainMetrics) = try await run(target, "Once upon a time", GenerateOptions(maxTokens: 24, minTokens: 24))
        let (spec, metrics) = try await run(drafted, "Once upon a time", GenerateOptions(maxTokens: 24, minTokens: 24, maxDraftTokens: 4))
        XCTAssertEqual(plain, spec)
        XCTAssertGreaterThan(metrics.draftTokens, 0)
        XCTAssertEqual(metrics.draftTokens, metrics.acceptedDraftTokens)
        XCTAssertLessThan(metrics.decodePasses, plainMetrics.decodePasses)
        // The default options speculate once a draft is attached; the same answer still.
        let (byDefault, defaultMetrics) = try await run(drafted, "Once upon a time", GenerateOptions(maxTokens: 24, minTokens: 24))
        XCTAssertEqual(plain, byDefault)
        XCTAssertGreaterThan(defaultMetrics.draftTokens, 0)
    }

    func testPromptLookupNeedsNoDraftAndBadOptionsThrow() async throws {
        let llm = try tiny()
        let prompt = "one two three four one two three four one two"
        let (plain, _) = try await run(llm, prompt, GenerateOptions(maxTokens: 32, minTokens: 32))
        let (spec, metrics) = try await run(llm, prompt, GenerateOptions(maxTokens: 32, minTokens: 32, maxDraftTokens: 6))
        XCTAssertEqual(plain, spec)
        XCTAssertGreaterThan(metrics.draftTokens, 0)
        do {
            for try await _ in llm.generate("Hi", options: GenerateOptions(maxDraftTokens: 99)) {}
            XCTFail("k = 99 was accepted")
        } catch EngineError.InvalidConfig {}
    }

    func testAManifestMakesTheCascadeItDescribes() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cascade-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let identity = Fixtures.model("identity_f32")
        let manifest = dir.appendingPathComponent("cascade.json")
        try """
        {"fast":{"model":"\(identity)"},"main":{"model":"\(identity)"},
         "gate":{"confidence":"top_probability","output":"y","threshold":0.7},"table":[]}
        """.write(to: manifest, atomically: true, encoding: .utf8)
        let cascade = try Cascade(manifest: manifest.path)
        let sure = try Tensor([0.9, 0.05, 0.05, 0.8, 0.1, 0.1] as [Float], shape: [2, 3])
        let unsure = try Tensor([0.9, 0.05, 0.05, 0.4, 0.35, 0.25] as [Float], shape: [2, 3])
        let first = try await cascade.infer(["x": sure])
        XCTAssertEqual(first.path, .fast)
        let second = try await cascade.infer(["x": unsure])
        XCTAssertEqual(second.path, .main)
        XCTAssertEqual(cascade.counters.escalations, 1)
        XCTAssertThrowsError(try Cascade(manifest: dir.appendingPathComponent("missing.json").path)) { error in
            guard case EngineError.ModelNotFound = error else { return XCTFail("\(error)") }
        }
    }
}

extension AdaptiveTests {
    func testCtcOutputsDecodeWithTheirDictionary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ctc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let dictionary = dir.appendingPathComponent("dict.txt")
        try "a\nb\n".write(to: dictionary, atomically: true, encoding: .utf8)
        // classes: blank, a, b, space; steps: a a blank a b space b
        let steps = [1, 1, 0, 1, 2, 3, 2]
        var probabilities = [Float](repeating: 0, count: steps.count * 4)
        for (t, c) in steps.enumerated() { probabilities[t * 4 + c] = 0.9 }
        let decoder = try CtcDecoder(path: dictionary.path)
        let line = try decoder.decode(Tensor(probabilities, shape: [1, steps.count, 4]))
        XCTAssertEqual(line.text, "aab b")
        XCTAssertEqual(line.confidence, 0.9, accuracy: 1e-6)
        XCTAssertThrowsError(try decoder.decode(Tensor([Float](repeating: 0, count: 9), shape: [1, 1, 9]))) { error in
            guard case EngineError.InvalidConfig = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try CtcDecoder(path: dir.appendingPathComponent("missing.txt").path))
    }
}

/// The metrics a generation's onFinish hands over, read after the stream ends.
private final class MetricsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var metrics: GenerationMetrics?
    func set(_ m: GenerationMetrics) { lock.lock(); metrics = m; lock.unlock() }
    func get() -> GenerationMetrics? { lock.lock(); defer { lock.unlock() }; return metrics }
}
