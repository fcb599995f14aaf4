import Foundation
import XCTest
@testable import OpenAutoGLM

/// Many requests from Swift: concurrent runs, priorities, deadlines, task cancellation that reaches a running
/// inference, close during runs, and LLM streams sharing one model. `matmul_chain` (400 MatMuls, a few hundred ms)
/// is long enough to stop part-way.
final class SchedulingTests: XCTestCase {
    private let size = 384
    private var x: Tensor { try! Tensor([Float](repeating: 1 / Float(size), count: size * size), shape: [size, size]) }

    private func chain() throws -> Engine { try Engine(path: Fixtures.model("matmul_chain")) }

    private func runChain(_ engine: Engine, _ priority: Priority = .normal) throws -> [Float] {
        try engine.inferSync(["x": x], priority: priority)["y"]!.values()
    }

    private func minilm(concurrency: Int32) throws -> Engine {
        var config = EngineConfig.default
        config.concurrency = concurrency
        return try Engine(path: Fixtures.realModel("minilm-l6-int8"), config: config)
    }

    private func tokens(_ i: Int) -> [Int64] {
        (0..<(8 + i)).map { (t: Int) -> Int64 in
            let id: Int = (t * 37 + i * 11) % 2000
            return Int64(101 + id)
        }
    }

    private func embedInputs(_ ids: [Int64]) -> [String: Tensor] {
        let n = ids.count
        return ["input_ids": try! Tensor(ids, shape: [1, n]),
                "attention_mask": try! Tensor([Int64](repeating: 1, count: n), shape: [1, n]),
                "token_type_ids": try! Tensor([Int64](repeating: 0, count: n), shape: [1, n])]
    }

    func testConcurrentInferOnOneEngineIsBitIdenticalToSerial() async throws {
        let serial = try minilm(concurrency: 1)
        let expected = try (0..<8).map { try serial.inferSync(embedInputs(tokens($0)))["last_hidden_state"]!.data }
        let engine = try minilm(concurrency: 2)
        try await withThrowingTaskGroup(of: (Int, Data).self) { group in
            for round in 0..<3 {
                for i in 0..<8 {
                    let inputs = embedInputs(tokens(i))
                    group.addTask {
                        let out = try await engine.infer(inputs, priority: round == 0 ? .interactive : .normal)
                        return (i, out["last_hidden_state"]!.data)
                    }
                }
            }
            for try await (i, data) in group { XCTAssertEqual(data, expected[i], "request \(i)") }
        }
        var bad = EngineConfig.default
        bad.concurrency = 0
        guard case .InvalidConfig = engineError({ _ = try Engine(path: Fixtures.model("matmul_dynamic"), config: bad) }) else {
            return XCTFail("concurrency 0 must be InvalidConfig")
        }
    }

    func testCancellingTheTaskStopsARunningInference() async throws {
        let engine = try chain()
        let started = Date()
        let full = try runChain(engine)
        let whole = Date().timeIntervalSince(started)
        let inputs = ["x": x]
        let task = Task { try await engine.infer(inputs) }
        try await Task.sleep(nanoseconds: 10_000_000)
        let cancelled = Date()
        task.cancel()
        let result = await task.result
        let stopping = Date().timeIntervalSince(cancelled)
        guard case .failure(EngineError.Cancelled) = result else { return XCTFail("expected Cancelled, got \(result)") }
        XCTAssertLessThan(stopping, whole / 2, "cancel took \(stopping) s; a whole run takes \(whole) s")
        // An explicit token does the same for a blocking call.
        let token = CancelToken()
        token.cancel()
        guard case .Cancelled = engineError({ _ = try engine.inferSync(inputs, cancel: token) }) else {
            return XCTFail("a cancelled token must give Cancelled")
        }
        XCTAssertEqual(try runChain(engine), full, "the engine answers exactly after a cancel")
    }

    func testADeadlineFailsTheRunAndTheEngineStaysUsable() async throws {
        let engine = try chain()
        let full = try runChain(engine)
        for deadline in [Duration.milliseconds(3), .milliseconds(-1)] {
            do {
                _ = try await engine.infer(["x": x], deadline: deadline)
                XCTFail("deadline \(deadline) must fail")
            } catch EngineError.DeadlineExceeded {}
        }
        let y: [Float] = try await engine.infer(["x": x], deadline: .seconds(600))["y"]!.values()
        XCTAssertEqual(y, full)
    }

    func testAnInteractiveRunStopsABackgroundRunWhichThenFinishesExactly() async throws {
        let background = try chain()
        let interactive = try minilm(concurrency: 1)
        let expected = try runChain(background)
        let answer = try interactive.inferSync(embedInputs(tokens(3)))["last_hidden_state"]!.data
        let inputs = ["x": x]
        let bg = Task { () throws -> ([Float], Date) in
            let y: [Float] = try await background.infer(inputs, priority: .background)["y"]!.values()
            return (y, Date())
        }
        try await Task.sleep(nanoseconds: 10_000_000)
        let out = try await interactive.infer(embedInputs(tokens(3)), priority: .interactive)
        let interactiveDone = Date()
        XCTAssertEqual(out["last_hidden_state"]!.data, answer)
        let (y, backgroundDone) = try await bg.value
        XCTAssertEqual(y, expected, "a restarted run gives the same answer")
        XCTAssertGreaterThan(backgroundDone, interactiveDone)
        XCTAssertGreaterThanOrEqual(background.preemptedRuns, 1)
    }

    func testCloseDuringARunGivesEngineClosed() async throws {
        let engine = try chain()
        let inputs = ["x": x]
        let running = Task { try await engine.infer(inputs) }
        try await Task.sleep(nanoseconds: 10_000_000)
        engine.close()
        guard case .failure(EngineError.EngineClosed) = await running.result else { return XCTFail("expected EngineClosed") }
        guard case .EngineClosed = engineError({ _ = try self.runChain(engine) }) else { return XCTFail("closed") }
    }

    func testLlmStreamsShareOneModelAndAChatTakesOneMessageAtATime() async throws {
        var config = EngineConfig.default
        config.intraOpThreads = 1
        let llm = try Llm(directory: Fixtures.env("OPENAUTOGLM_LLMS") + "/smollm2-tiny", config: config)
        let prompts = ["The sea is", "Once upon a time", "Count with me"]
        let options = GenerateOptions(maxTokens: 16)
        var solo: [String] = []
        for prompt in prompts {
            var text = ""
            for try await piece in llm.generate(prompt, options: options) { text += piece }
            solo.append(text)
        }
        let priorities: [Priority] = [.interactive, .normal, .background]
        let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask {
                    var text = ""
                    for try await piece in llm.generate(prompt, options: options, priority: priorities[i]) { text += piece }
                    return (i, text)
                }
            }
            var texts = [String](repeating: "", count: prompts.count)
            for try await (i, text) in group { texts[i] = text }
            return texts
        }
        XCTAssertEqual(together, solo)

        let chat = try llm.newChat()
        let firstPiece = Flag()
        let streaming = Task {
            for try await _ in chat.send("First", options: GenerateOptions(maxTokens: 1000, minTokens: 1000)) { firstPiece.set() }
        }
        while !firstPiece.isSet { try await Task.sleep(nanoseconds: 1_000_000) }
        do {
            for try await _ in chat.send("Second") {}
            XCTFail("a second message while the first answer streams must be refused")
        } catch EngineError.ChatBusy {}
        streaming.cancel()
        _ = await streaming.result
        // The cancelled answer ends on the native queue; then the chat takes the next message.
        for _ in 0..<1000 {
            do {
                for try await _ in chat.send("Second", options: GenerateOptions(maxTokens: 4)) {}
                break
            } catch EngineError.ChatBusy {
                try await Task.sleep(nanoseconds: 5_000_000)
            }
        }
        let users = try chat.history.filter { $0.role == "user" }.map(\.content)
        XCTAssertEqual(users, ["First", "Second"])
    }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
