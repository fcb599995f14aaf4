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

    /// Collects what `onFinish` reports.
    private final class Finish: @unchecked Sendable {
        var metrics: GenerationMetrics?
        var reason: FinishReason?
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
}
