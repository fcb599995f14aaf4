import Foundation
import XCTest

@testable import OpenAutoGLM

/// The app's own log handler: it takes the records at the level in force, and nil gives them back to the platform.
final class LogHandlerTests: XCTestCase {
    final class Taken: @unchecked Sendable {
        private let lock = NSLock()
        private var records: [(LogLevel, String, String)] = []
        func add(_ record: (LogLevel, String, String)) { lock.withLock { records.append(record) } }
        var all: [(LogLevel, String, String)] { lock.withLock { records } }
    }

    private func loadAskingForNnapi() throws {
        let config = EngineConfig(
            accelerators: [.nnapi(fp16: false, nchw: false, cpuDisabled: false, cpuOnly: false), .cpu],
            optimizeLevel: .o3, precision: .auto)
        let engine = try Engine(path: Fixtures.model("matmul_dynamic"), config: config)
        engine.close()
    }

    func testAHandlerTakesWarningsAtWarnAndNothingBelowTheLevel() throws {
        let taken = Taken()
        let before = Runtime.logLevel
        defer { Runtime.logLevel = before; try? Runtime.setLogHandler(nil) }
        try Runtime.setLogHandler { level, target, message in taken.add((level, target, message)) }
        Runtime.logLevel = .warn
        try loadAskingForNnapi()
        XCTAssertTrue(taken.all.contains { $0.0 == .warn && $0.1.hasPrefix("openautoglm") && $0.2.contains("NnapiExecutionProvider") },
                      "\(taken.all)")
        Runtime.logLevel = .error
        let count = taken.all.count
        try loadAskingForNnapi()
        XCTAssertEqual(taken.all.count, count, "below the level in force nothing arrives")
        try Runtime.setLogHandler(nil)
        Runtime.logLevel = .warn
        try loadAskingForNnapi()
        XCTAssertEqual(taken.all.count, count, "after nil the platform's sink has them")
    }
}
