import Foundation
import XCTest
@testable import OpenAutoGLM

final class EngineTests: XCTestCase {
    /// y = x @ W + b computed here from the fixture's W and b.
    private func expectedMatmul(_ x: [Float], batch: Int) -> [Float] {
        let e = Fixtures.expected("matmul_dynamic")
        let w = (e["W"] as! [Double]).map(Float.init), b = (e["b"] as! [Double]).map(Float.init)
        var y = [Float](repeating: 0, count: batch * 3)
        for i in 0..<batch * 3 {
            let row = i / 3, col = i % 3
            var acc: Float = b[col]
            for k in 0..<4 { acc += x[row * 4 + k] * w[k * 3 + col] }
            y[i] = acc
        }
        return y
    }

    private func assertClose(_ got: [Float], _ want: [Float], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, file: file, line: line)
        for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-4 * (1 + abs(w)), file: file, line: line) }
    }

    private func matmul(_ engine: Engine, _ x: [Float], batch: Int) throws -> [Float] {
        try engine.inferSync(["x": try Tensor(x, shape: [batch, 4])])["y"]!.values()
    }

    func testIntrospectionKeepsSymbolicDimsAndMetadata() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        XCTAssertEqual(engine.info.inputs.count, 1)
        XCTAssertEqual(engine.info.inputs[0].name, "x")
        XCTAssertEqual(engine.info.inputs[0].elementType, .f32)
        XCTAssertEqual(engine.info.inputs[0].shape, [.symbolic(name: "batch"), .fixed(size: 4)])
        XCTAssertEqual(engine.info.outputs.map(\.name), ["y"])
        XCTAssertEqual(engine.info.metadata.producer, "openautoglm-fixtures")
        XCTAssertEqual(engine.info.metadata.version, 7)
        XCTAssertEqual(engine.info.metadata.custom["author"], "openautoglm tests")
    }

    func testDynamicBatchGivesNumpyValues() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        for batch in [1, 3] {
            let x = (0..<batch * 4).map { Float($0) * 0.5 - 1 }
            assertClose(try matmul(engine, x, batch: batch), expectedMatmul(x, batch: batch))
        }
    }

    func testMultipleInputsAndOutputsInModelOrder() throws {
        let engine = try Engine(path: Fixtures.model("multi_io"))
        let out = try engine.inferSync(["b": Tensor([1, 2, 3] as [Int64], shape: [3]), "a": Tensor([-1, 0.5, 2] as [Float], shape: [3])])
        XCTAssertEqual(out.names, ["sum", "positive", "total"])
        XCTAssertEqual(try out["sum"]!.values(as: Float.self), [0, 2.5, 5])
        XCTAssertEqual(try out["positive"]!.bools(), [false, true, true])
        XCTAssertEqual(try out["total"]!.values(as: Int64.self), [6])
        XCTAssertEqual(out["total"]!.shape, [])
        XCTAssertNil(out["missing"])
        // A collection in model order: loops, count, map, first.
        XCTAssertEqual(out.count, 3)
        XCTAssertEqual(out.map(\.name), out.names)
        var seen: [String] = []
        for (name, tensor) in out {
            seen.append(name)
            XCTAssertEqual(tensor, out[name])
        }
        XCTAssertEqual(seen, ["sum", "positive", "total"])
        XCTAssertEqual(out.first?.tensor.shape, [3])
    }

    func testModelDataMatchesPath() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.model("matmul_dynamic")))
        let x: [Float] = [1, 2, 3, 4]
        XCTAssertEqual(try matmul(Engine(modelData: data), x, batch: 1), try matmul(Engine(path: Fixtures.model("matmul_dynamic")), x, batch: 1))
    }

    func testConfigIsApplied() throws {
        let config = EngineConfig(accelerators: [.cpu], optimizeLevel: .o0, precision: .auto, intraOpThreads: 1)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config)
        let x: [Float] = [1, 0, 0, 0]
        assertClose(try matmul(engine, x, batch: 1), expectedMatmul(x, batch: 1))
    }

    func testConcurrentAsyncCallsGiveTheirOwnResults() async throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for i in 0..<32 {
                group.addTask {
                    let out = try await engine.infer(["x": Tensor([Float](repeating: Float(i), count: 4), shape: [1, 4])])
                    return (i, try out["y"]!.values())
                }
            }
            return try await group.reduce(into: [(Int, [Float])]()) { $0.append($1) }
        }
        XCTAssertEqual(results.count, 32)
        for (i, y) in results { assertClose(y, expectedMatmul([Float](repeating: Float(i), count: 4), batch: 1)) }
    }

    func testClosedEngineThrowsTypedError() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        _ = try matmul(engine, [0, 0, 0, 0], batch: 1)
        engine.close()
        XCTAssertTrue(engine.isClosed)
        XCTAssertEqual(engineError { _ = try self.matmul(engine, [0, 0, 0, 0], batch: 1) }, .EngineClosed)
    }

    func testCloseTwiceIsHarmless() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        engine.close()
        engine.close()
        XCTAssertTrue(engine.isClosed)
    }

    func testWarmupRunsTheModelAndFailsTypedWhenClosed() async throws {
        let engine = try Engine(path: Fixtures.model("multi_io"))
        let times = try await engine.warmup(runs: 3)
        XCTAssertEqual(times.count, 3)
        engine.close()
        do {
            try await engine.warmup()
            XCTFail("expected EngineClosed")
        } catch let error as EngineError {
            XCTAssertEqual(error, .EngineClosed)
        }
    }

    func testInterOpThreadsAndSpinningAreAccepted() throws {
        let config = EngineConfig(accelerators: [.cpu], optimizeLevel: .o3, precision: .auto, intraOpThreads: 1, interOpThreads: 2, spinning: false)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config)
        let x: [Float] = [1, 2, 3, 4]
        assertClose(try matmul(engine, x, batch: 1), expectedMatmul(x, batch: 1))
    }

    func testUnavailableAcceleratorsAreSkippedWithAReasonAndTheCpuRuns() throws {
        let config = EngineConfig(
            accelerators: [
                .coreMl(computeUnits: .all, modelFormat: .mlProgram, staticShapes: true, subgraphs: false, cacheDir: nil),
                .nnapi(fp16: true, nchw: false, cpuDisabled: false, cpuOnly: false),
                .xnnpack(threads: 0),
                .cpu,
            ],
            optimizeLevel: .o3, precision: .auto)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config)
        XCTAssertEqual(engine.accelerators.active, ["CPUExecutionProvider"])
        XCTAssertEqual(engine.accelerators.skipped.map(\.provider),
                       ["CoreMLExecutionProvider", "NnapiExecutionProvider", "XnnpackExecutionProvider"])
        let x: [Float] = [1, 2, 3, 4]
        assertClose(try matmul(engine, x, batch: 1), expectedMatmul(x, batch: 1))
    }

    func testAutoResolvesToThisPlatformsChoiceAndNeverNnapi() throws {
        var config = EngineConfig.default
        config.accelerators = [.auto]
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config)
        // On Linux `.auto` is the CPU (CoreML on Apple platforms); what it resolved to is reported, never NNAPI.
        XCTAssertEqual(engine.accelerators.active.last, "CPUExecutionProvider")
        let tried = engine.accelerators.active + engine.accelerators.skipped.map(\.provider)
        XCTAssertFalse(tried.contains("auto") || tried.contains("NnapiExecutionProvider"), "\(tried)")
        let x: [Float] = [1, 0, -1, 0.5]
        let cpu = try Engine(path: Fixtures.model("matmul_dynamic"))
        XCTAssertEqual(try matmul(engine, x, batch: 1), try matmul(cpu, x, batch: 1))
    }

    func testStrictModeRefusesAnUnavailableAccelerator() {
        let config = EngineConfig(accelerators: [.xnnpack(threads: 2)], optimizeLevel: .o3, precision: .auto, strict: true)
        let error = engineError { _ = try Engine(path: Fixtures.model("matmul_dynamic"), config: config) }
        guard case .InvalidConfig(let reason)? = error else { return XCTFail("expected InvalidConfig, got \(String(describing: error))") }
        XCTAssertTrue(reason.contains("XnnpackExecutionProvider"), reason)
    }

    func testNativeLibraryVersionMatchesBindings() throws {
        try Runtime.checkNativeLibrary()
        XCTAssertEqual(nativeVersion(), Runtime.version)
    }

    /// A library of another version is the typed error naming both versions (a real second build is not made here).
    func testANativeLibraryOfAnotherVersionIsNativeLibraryUnavailable() {
        XCTAssertNil(Runtime.versionMismatch(native: Runtime.version))
        guard case let .NativeLibraryUnavailable(reason)? = Runtime.versionMismatch(native: "0.0.1-other", bindings: "0.9.0")
        else { return XCTFail("expected NativeLibraryUnavailable") }
        XCTAssertTrue(reason.contains("0.0.1-other") && reason.contains("0.9.0"), reason)
    }

    /// Blocking runs go to the SDK's native queue behind a checked continuation, never to the awaiting task's
    /// cooperative thread; more concurrent requests than cores all complete.
    func testBlockingCallsRunOnTheNativeQueue() async throws {
        XCTAssertFalse(NativeWork.isOnNativeQueue)
        let onQueue = try await NativeWork.run { NativeWork.isOnNativeQueue }
        XCTAssertTrue(onQueue)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        let count = ProcessInfo.processInfo.activeProcessorCount * 4
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for i in 0..<count {
                group.addTask {
                    let out = try await engine.infer(["x": Tensor([Float](repeating: Float(i), count: 4), shape: [1, 4])])
                    return (i, try out["y"]!.values())
                }
            }
            return try await group.reduce(into: [(Int, [Float])]()) { $0.append($1) }
        }
        XCTAssertEqual(results.count, count)
        for (i, y) in results { assertClose(y, expectedMatmul([Float](repeating: Float(i), count: 4), batch: 1)) }
    }

    func testWarmupTakesTheSizesOrTheInputsTheAppWillUse() async throws {
        let pairs = try Engine(path: Fixtures.model("pairs"))
        do {
            try await pairs.warmup()
            XCTFail("zeros with n = 1 cannot run")
        } catch let error as EngineError {
            // The hint is the same in every language and names no language's method.
            XCTAssertTrue("\(error)".contains("warm up with the sizes the app uses"), "\(error)")
            XCTAssertFalse("\(error)".contains("warmup_"), "\(error)")
        }
        let dims = try await pairs.warmup(dims: ["n": 64], runs: 2)
        XCTAssertEqual(dims.count, 2)
        let example = try await pairs.warmup(example: ["x": Tensor([Float](repeating: 0, count: 4), shape: [4])])
        XCTAssertEqual(example.count, 1)
        for bad in [["time": 3], ["n": -1]] {
            do {
                try await pairs.warmup(dims: bad)
                XCTFail("\(bad) must be refused")
            } catch EngineError.InvalidConfig {}
        }
    }
}


/// The per-inference fast path: outputs into the caller's buffers, with the same errors as every call.
final class FastPathTests: XCTestCase {
    func testOutputsGoIntoCallerBuffers() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        let x = ["x": try Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])]
        let want: [Float] = try engine.inferSync(x)["y"]!.values()
        let y = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 4, alignment: 16)
        defer { y.deallocate() }
        for _ in 0..<3 { XCTAssertEqual(try engine.inferSync(x, into: ["y": y]).count, 0) }
        XCTAssertEqual(Array(y.bindMemory(to: Float.self)), want)
        let short = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 16)
        defer { short.deallocate() }
        guard case .InvalidInput(let name, _)? = engineError({ _ = try engine.inferSync(x, into: ["y": short]) }) else {
            return XCTFail("a buffer of the wrong size")
        }
        XCTAssertEqual(name, "y")
        guard case .InvalidInput? = engineError({ _ = try engine.inferSync(x, into: ["nope": y]) }) else {
            return XCTFail("an output the model lacks")
        }
        // Unknown inputs and closed engines give the same errors as the usual call.
        guard case .InvalidInput("z", _)? = engineError({ _ = try engine.inferSync(["z": x["x"]!], into: ["y": y]) }) else {
            return XCTFail("an input the model lacks")
        }
        engine.close()
        guard case .EngineClosed? = engineError({ _ = try engine.inferSync(x, into: ["y": y]) }) else {
            return XCTFail("closed")
        }
    }

    /// An input the model lacks is answered by the fast path itself (no second call through uniffi), with the error
    /// every call gives.
    func testAnUnknownInputIsRefusedByTheFastPathItself() throws {
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"))
        let x = try Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])
        var fast: EngineError?
        do { _ = try engine.fastPath(["z": x], into: [:], priority: .normal, timeoutMicros: nil, cancel: nil) } catch let e as EngineError { fast = e }
        var uniffi: EngineError?
        do { _ = try engine.native.run(inputs: [InputSpec(name: "z", elementType: .f32, shape: [1, 4], offset: 0, length: 16)],
                                       data: x.data, options: CallOptions(priority: .normal)) } catch let e as EngineError { uniffi = e }
        guard case .InvalidInput("z", let reason)? = fast else { return XCTFail("the fast path must refuse `z`: \(String(describing: fast))") }
        XCTAssertEqual(fast, uniffi)
        XCTAssertFalse(reason.isEmpty)
    }

    /// The element type codes the fast path sends are the Rust side's table.
    func testElementTypeCodesAreTheNativeTable() {
        XCTAssertEqual(Set(ElementType.byCode.map { "\($0)" }).count, 14)
        for (code, type) in ElementType.byCode.enumerated() {
            XCTAssertEqual(elementTypeCode(elementType: type), UInt32(code), "\(type)")
            XCTAssertEqual(ElementType(code: UInt32(code)), type)
        }
        XCTAssertNil(ElementType(code: 14))
    }
}
