import Foundation
import XCTest
@testable import OpenAutoGLM

/// Streaming generation from Swift, on the tiny random decoder of SmolLM2's layout and tokenizer.
final class LlmTests: XCTestCase {
    private func tiny() throws -> Llm {
        var config = EngineConfig.default
        config.intraOpThreads = 1
        return try Llm(directory: Fixtures.env("OPENAUTOGLM_LLMS") + "/smollm2-tiny", config: config)
    }

    /// A copy of the tiny decoder under three names, with `llm.json` verdicts as `models prepare` writes them.
    private func decoders(int4MixedPassed: Bool) throws -> URL {
        let tiny = URL(fileURLWithPath: Fixtures.env("OPENAUTOGLM_LLMS") + "/smollm2-tiny")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("openautoglm-llm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in ["tokenizer.json", "decoder.json", "chat_template.jinja", "fp32.onnx.data"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        for name in ["fp32.onnx", "int4.onnx", "int4-mixed.onnx"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent("fp32.onnx"), to: dir.appendingPathComponent(name))
        }
        try """
        {"precisions": {"fp32": {"file": "fp32.onnx", "quality": {"passed": true}},
          "int4": {"file": "int4.onnx", "quality": {"passed": false}},
          "int4-mixed": {"file": "int4-mixed.onnx", "quality": {"passed": \(int4MixedPassed)}}}}
        """.write(to: dir.appendingPathComponent("llm.json"), atomically: true, encoding: .utf8)
        return dir
    }

    func testAutoNeverPicksADecoderThatFailedItsQualityCheck() throws {
        let passed = try decoders(int4MixedPassed: true)
        defer { try? FileManager.default.removeItem(at: passed) }
        XCTAssertEqual(try Llm(directory: passed.path).precision.file, "int4-mixed.onnx")
        let failed = try decoders(int4MixedPassed: false)
        defer { try? FileManager.default.removeItem(at: failed) }
        XCTAssertEqual(try Llm(directory: failed.path).precision.file, "fp32.onnx")
        var config = EngineConfig.default
        config.precision = .int4
        let asked = try Llm(directory: failed.path, config: config)
        XCTAssertTrue(asked.precision.reason.contains("did not pass"), asked.precision.reason)
    }

    /// Collects what `onFinish` reports.
    private final class Finish: @unchecked Sendable {
        var metrics: GenerationMetrics?
        var reason: FinishReason?
    }

    /// A generation that fails ends with its typed error and reports `.failed`, never `.stop`.
    func testAFailedGenerationReportsFailed() async throws {
        let dir = try decoders(int4MixedPassed: false)
        defer { try? FileManager.default.removeItem(at: dir) }
        // decoder.json claims one more token than the decoder's logits hold: the first step fails.
        let path = dir.appendingPathComponent("decoder.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as! [String: Any]
        config["vocab"] = 49153
        try JSONSerialization.data(withJSONObject: config).write(to: path)
        let llm = try Llm(directory: dir.path)
        let finish = Finish()
        do {
            for try await _ in llm.generate("The sea is", options: GenerateOptions(maxTokens: 4), onFinish: { finish.metrics = $0; finish.reason = $1 }) {}
            XCTFail("the generation must fail")
        } catch EngineError.InferenceFailed(let reason) {
            XCTAssertTrue(reason.contains("49153"), reason)
        }
        XCTAssertEqual(finish.reason, .failed)
    }

    func testPiecesStreamWithMetrics() async throws {
        let llm = try tiny()
        let finish = Finish()
        var pieces: [String] = []
        for try await piece in llm.generate("The sea is", options: GenerateOptions(maxTokens: 8), onFinish: { finish.metrics = $0; finish.reason = $1 }) {
            pieces.append(piece)
        }
        XCTAssertFalse(pieces.isEmpty)
        XCTAssertTrue(pieces.allSatisfy { !$0.isEmpty })
        XCTAssertTrue(finish.reason == .length || finish.reason == .stop)
        XCTAssertGreaterThan(finish.metrics?.timeToFirstTokenMs ?? 0, 0)
        XCTAssertLessThanOrEqual(finish.metrics?.generatedTokens ?? 99, 8)
    }

    func testCancellingTheTaskCancelsTheGeneration() async throws {
        let llm = try tiny()
        let finish = Finish()
        let stream = llm.generate("Count", options: GenerateOptions(maxTokens: 500), onFinish: { finish.metrics = $0; finish.reason = $1 })
        let task = Task {
            var count = 0
            for try await _ in stream {
                count += 1
                if count == 2 { withUnsafeCurrentTask { $0?.cancel() } }
            }
            return count
        }
        _ = try? await task.value
        for _ in 0..<200 where finish.reason == nil { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(finish.reason, .cancelled)
        XCTAssertLessThan(finish.metrics?.generatedTokens ?? 500, 500)
    }

    func testSameSeedSameText() async throws {
        let llm = try tiny()
        let options = GenerateOptions(maxTokens: 12, temperature: 1, topK: 40, seed: 5)
        var first: [String] = [], second: [String] = []
        for try await p in llm.generate("Hello", options: options) { first.append(p) }
        for try await p in llm.generate("Hello", options: options) { second.append(p) }
        XCTAssertEqual(first, second)
    }

    func testChatKeepsItsTurns() async throws {
        let chat = try tiny().newChat(system: "You are terse.")
        var answer = ""
        for try await p in chat.send("Hi", options: GenerateOptions(maxTokens: 4)) { answer += p }
        XCTAssertEqual(try chat.history.map(\.role), ["system", "user", "assistant"])
        XCTAssertEqual(try chat.history.last?.content, answer)
    }

    /// Later turns start from the kept cache and answer exactly as a full prefill of the same history.
    func testLaterTurnsReuseTheCacheAndAnswerAsAFullPrefill() async throws {
        let llm = try tiny()
        let chat = try llm.newChat(system: "You are terse.")
        for (turn, message) in ["First question", "Second question", "Third question"].enumerated() {
            var fresh = ""
            let messages = try chat.history + [ChatMessage(role: "user", content: message)]
            for try await p in llm.chat(messages, options: GenerateOptions(maxTokens: 6)) { fresh += p }
            let finish = Finish()
            var answer = ""
            for try await p in chat.send(message, options: GenerateOptions(maxTokens: 6), onFinish: { finish.metrics = $0; finish.reason = $1 }) {
                answer += p
            }
            XCTAssertEqual(answer, fresh, "turn \(turn)")
            if turn > 0 { XCTAssertGreaterThan(finish.metrics?.cachedPromptTokens ?? 0, 0, "turn \(turn) reuses the cache") }
            XCTAssertGreaterThan(chat.cacheBytes, 0)
        }
        chat.releaseCache()
        XCTAssertEqual(chat.cacheBytes, 0)
    }

    /// A second chat with the same system prompt starts from the first one's cached prefix, and answers the same.
    func testChatsWithOneSystemPromptShareItsCache() async throws {
        let (llm, fresh) = (try tiny(), try tiny())
        let system = "You are a careful assistant for a hiking club. Answer briefly and name the trail."
        let first = try llm.newChat(system: system)  // held: a chat that goes away gives its cache back
        for try await _ in first.send("Which trail is the longest?", options: GenerateOptions(maxTokens: 6)) {}
        let second = try llm.newChat(system: system)
        var want = "", got = ""
        let messages = [ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: "Is it open?")]
        for try await p in fresh.chat(messages, options: GenerateOptions(maxTokens: 6)) { want += p }
        let finish = Finish()
        for try await p in second.send("Is it open?", options: GenerateOptions(maxTokens: 6), onFinish: { finish.metrics = $0; finish.reason = $1 }) {
            got += p
        }
        XCTAssertEqual(got, want)
        XCTAssertGreaterThan(Int(finish.metrics?.cachedPromptTokens ?? 0), try llm.encode(system).count, "the system prompt is reused")
        XCTAssertGreaterThan(first.cacheBytes, 0)
    }

    /// Over the idle limit, the least recently used chat gives its cache back.
    func testIdleCachesOverTheLimitAreGivenBackLeastRecentlyUsedFirst() async throws {
        let llm = try tiny()
        let older = try llm.newChat(system: "You are terse.")
        for try await _ in older.send("First question", options: GenerateOptions(maxTokens: 6)) {}
        XCTAssertEqual(older.cacheBytes, llm.cacheBytes)
        llm.idleCacheLimitBytes = older.cacheBytes * 3 / 2
        let newer = try llm.newChat(system: "You are terse.")
        for try await _ in newer.send("Other question", options: GenerateOptions(maxTokens: 6)) {}
        XCTAssertEqual(older.cacheBytes, 0)
        XCTAssertTrue(newer.cacheBytes > 0 && llm.cacheBytes <= llm.idleCacheLimitBytes)
    }

    func testBadRequestsAreTypedErrors() async throws {
        let llm = try tiny()
        do {
            for try await _ in llm.generate("Hi", options: GenerateOptions(temperature: -1)) {}
            XCTFail("expected InvalidConfig")
        } catch let error as EngineError {
            guard case .InvalidConfig = error else { return XCTFail("expected InvalidConfig, got \(error)") }
        }
        let missing = engineError { _ = try Llm(directory: "/nonexistent") }
        guard case .ModelNotFound? = missing else { return XCTFail("expected ModelNotFound, got \(String(describing: missing))") }
    }

    func testClosedLlmAndItsChatsThrowEngineClosed() async throws {
        let llm = try tiny()
        let chat = try llm.newChat(system: "Be brief.")
        llm.close()
        llm.close()
        XCTAssertTrue(llm.isClosed)
        for stream in [llm.generate("Hi"), llm.chat([ChatMessage(role: "user", content: "Hi")]), chat.send("Hi")] {
            do {
                for try await _ in stream {}
                XCTFail("expected EngineClosed")
            } catch let error as EngineError {
                guard case .EngineClosed = error else { return XCTFail("expected EngineClosed, got \(error)") }
            }
        }
        guard case .EngineClosed? = engineError({ _ = try llm.newChat() }) else { return XCTFail("newChat after close") }
        guard case .EngineClosed? = engineError({ _ = try chat.history }) else { return XCTFail("history after close") }
    }

    /// Tokens are pulled on the SDK's native queue, not on Swift's cooperative thread pool.
    func testTokensArePulledOffTheCooperativePool() async throws {
        let llm = try tiny()
        let onNativeQueue = Finish()
        for try await _ in llm.generate("Hi", options: GenerateOptions(maxTokens: 2), onFinish: { _, _ in
            onNativeQueue.reason = NativeWork.isOnNativeQueue ? .stop : nil
        }) {}
        XCTAssertEqual(onNativeQueue.reason, .stop)
        XCTAssertFalse(NativeWork.isOnNativeQueue)
    }

    /// A chat with a system message and three exchanges.
    private func threeExchanges(_ llm: Llm, _ policy: HistoryPolicy) async throws -> Llm.Chat {
        let chat = try llm.newChat(system: "You are terse.", policy: policy)
        for message in ["First question", "Second question", "Third question"] {
            for try await _ in chat.send(message, options: GenerateOptions(maxTokens: 3)) {}
        }
        XCTAssertEqual(try chat.history.map(\.role), ["system", "user", "assistant", "user", "assistant", "user", "assistant"])
        return chat
    }

    func testAMessageTooLongForTheContextLeavesTheHistoryAsItWas() async throws {
        let llm = try tiny()
        for policy in [HistoryPolicy.dropOldestExchanges, .refuse] {
            let chat = try await threeExchanges(llm, policy)
            let before = try chat.history
            do {
                for try await _ in chat.send(String(repeating: "word ", count: 2048 + 10)) {}
                XCTFail("expected InvalidInput")
            } catch let error as EngineError {
                guard case .InvalidInput(let name, _) = error, name == "message" else { return XCTFail("\(error)") }
            }
            XCTAssertEqual(try chat.history, before, "\(policy): nothing dropped, the refused message not kept")
        }
    }

    func testAFullContextDropsWholeExchangesOldestFirst() async throws {
        let llm = try tiny()
        let chat = try await threeExchanges(llm, .dropOldestExchanges)
        let history = try chat.history
        // Of the 2,048 positions, leave 45 for the prompt: with the newest exchange it takes 37 tokens, with two 53
        // (the tiny decoder's greedy answers; core/tests/chat_history.rs computes them).
        for try await _ in chat.send("Fourth question", options: GenerateOptions(maxTokens: 2003)) { break }
        for _ in 0..<200 where (try chat.history.count) != 5 { try await Task.sleep(nanoseconds: 10_000_000) }
        let after = try chat.history
        XCTAssertEqual(after.map(\.role), ["system", "user", "assistant", "user", "assistant"])
        XCTAssertEqual(Array(after[0..<3]), [history[0], history[5], history[6]])
        XCTAssertEqual(after[3].content, "Fourth question")
    }

    func testMaxTokensZeroIsRefused() async throws {
        let llm = try tiny()
        do {
            for try await _ in llm.generate("Hi", options: GenerateOptions(maxTokens: 0)) {}
            XCTFail("expected InvalidConfig")
        } catch let error as EngineError {
            guard case .InvalidConfig = error else { return XCTFail("expected InvalidConfig, got \(error)") }
        }
    }

    /// Seed 616 cuts a character in half at one token (see core/tests/chat_history.rs): every view says U+FFFD.
    func testAnAnswerCutMidCharacterIsTheSameTextInEveryView() throws {
        let llm = try tiny()
        var config = EngineConfig.default
        config.intraOpThreads = 1
        let native = try NativeLlm.open(dir: Fixtures.env("OPENAUTOGLM_LLMS") + "/smollm2-tiny", config: config)
        let generation = try native.generate(prompt: "Hello", options: GenerateOptions(maxTokens: 1, temperature: 8, seed: 616))
        var pieces = ""
        while let piece = try generation.nextPiece() { pieces += piece }
        XCTAssertEqual(pieces, generation.text())
        XCTAssertEqual(try llm.decode(generation.tokens().map(Int.init)), generation.text())
        XCTAssertTrue(pieces.hasSuffix("\u{FFFD}"), pieces)
    }
}
