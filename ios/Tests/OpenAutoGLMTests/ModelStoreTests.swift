import Foundation
import XCTest
@testable import OpenAutoGLM

/// The model store from Swift through its default transport (URLSession) against the loopback server
/// `cargo xtask test` starts (real models, a bundle, and a manifest signed with a test key).
final class ModelStoreTests: XCTestCase {
    private var root = ""

    override func setUp() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    private var server: String { Fixtures.env("OPENAUTOGLM_TEST_SERVER") }

    private var publicKey: Data {
        let hex = Array(Fixtures.env("OPENAUTOGLM_TEST_MANIFEST_KEY").utf8)
        var bytes = [UInt8]()
        var i = 0
        while i + 1 < hex.count {
            bytes.append(UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16)!)
            i += 2
        }
        return Data(bytes)
    }

    private func manifest(_ store: ModelStore) async throws -> Manifest {
        try await store.fetchManifest(url: server + "/manifest.json", signatureURL: server + "/manifest.json.sig",
                                      publicKey: publicKey)
    }

    private func model(_ manifest: Manifest, _ name: String) -> ModelEntry {
        manifest.models.first { $0.name == name }!
    }

    private func runs(_ engine: Engine) throws {
        let out = try engine.inferSync([
            "input": Tensor([Float](repeating: 0, count: 512), shape: [1, 512]),
            "state": Tensor([Float](repeating: 0, count: 256), shape: [2, 1, 128]),
            "sr": Tensor([Int64(16000)], shape: []),
        ])
        let p: [Float] = try out["output"]!.values()
        XCTAssertTrue(p[0] >= 0 && p[0] <= 1)
    }

    func testASignedManifestIsTrustedAndATamperedOneIsNot() async throws {
        let store = try ModelStore(root: root)
        let signed = try await manifest(store)
        XCTAssertEqual(signed.models.count, 2)
        XCTAssertEqual(signed.bundles.map(\.name), ["silero-vad"])
        do {
            _ = try await store.fetchManifest(url: server + "/tampered.json",
                                              signatureURL: server + "/manifest.json.sig", publicKey: publicKey)
            XCTFail("a tampered manifest was trusted")
        } catch let error as EngineError {
            guard case .IntegrityFailed = error else { return XCTFail("\(error)") }
        }
        let json = try Data(contentsOf: URL(string: server + "/manifest.json")!)
        let signature = try Data(contentsOf: URL(string: server + "/manifest.json.sig")!)
        XCTAssertEqual(try ModelStore.verifyManifest(json: json, signature: signature, publicKey: publicKey).models.count, 2)
        let error = engineError { _ = try ModelStore.verifyManifest(json: json, signature: signature, publicKey: Data(count: 31)) }
        guard case .InvalidConfig = error else { return XCTFail("\(String(describing: error))") }
    }

    func testDownloadYieldsProgressThenTheVerifiedModel() async throws {
        let store = try ModelStore(root: root)
        let entry = model(try await manifest(store), "silero-vad.onnx")
        var progress: [(Int64, Int64)] = []
        var installed: InstalledModel?
        for try await event in store.download(entry) {
            switch event {
            case let .progress(bytes, total): progress.append((bytes, total))
            case let .done(model): installed = model
            }
        }
        XCTAssertGreaterThanOrEqual(progress.count, 2)
        XCTAssertEqual(progress.last?.0, entry.size)
        XCTAssertEqual(progress.last?.1, entry.size)
        let model = try XCTUnwrap(installed)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: model.path)).count, Int(entry.size))
        try runs(try model.load())
        // Installed: the second ensure returns at once with the same file.
        let again = try await store.ensure(entry)
        XCTAssertEqual(again.path, model.path)
    }

    func testWrongBytesAndBadEntriesAreTypedErrors() async throws {
        let store = try ModelStore(root: root)
        var entry = model(try await manifest(store), "silero-vad.onnx")
        entry.sha256 = String(repeating: "0", count: 64)
        do {
            _ = try await store.ensure(entry)
            XCTFail("wrong bytes were installed")
        } catch let error as EngineError {
            guard case .IntegrityFailed = error else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/silero-vad.onnx/5/silero-vad.onnx"))
        for bad in [ModelEntry(name: "../x.onnx", version: "1", urls: entry.urls, size: entry.size, sha256: entry.sha256),
                    ModelEntry(name: "x.onnx", version: "1", urls: ["http://example.com/x"], size: 1, sha256: entry.sha256),
                    ModelEntry(name: "x.onnx", version: "1", urls: entry.urls, size: -1, sha256: entry.sha256)] {
            do {
                _ = try await store.ensure(bad)
                XCTFail("\(bad) was accepted")
            } catch let error as EngineError {
                guard case .InvalidConfig = error else { return XCTFail("\(error)") }
            }
        }
    }

    func testCancellingTheTaskStopsTheDownloadAndItResumes() async throws {
        let store = try ModelStore(root: root)
        let entry = model(try await manifest(store), "silero-vad.onnx")
        var slow = entry
        slow.urls = [server + "/slow/models/silero-vad.onnx"]
        let seen = Seen()
        let task = Task { try await store.ensure(slow) { bytes, _ in seen.set(bytes) } }
        while seen.get() < 256 * 1024 { try await Task.sleep(nanoseconds: 10_000_000) }
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("the download finished despite the cancel")
        } catch is CancellationError {
        } catch let error as EngineError {
            guard case .Cancelled = error else { return XCTFail("\(error)") }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: root + "/silero-vad.onnx/5").filter { $0 != ".lock" }
        XCTAssertEqual(left.count, 1, "\(left)")
        XCTAssertTrue(left[0].hasPrefix(".partial-"))
        let done = try await store.ensure(entry)
        try runs(try done.load())
    }

    func testABundleFetchesOnlyTheVariantThisDeviceRuns() async throws {
        let store = try ModelStore(root: root)
        let entry = try await manifest(store).bundles[0]
        let installed = try await store.ensureBundle(entry)
        let engine = try installed.load()
        try runs(engine)
        let files = try FileManager.default.contentsOfDirectory(atPath: installed.path).filter { !$0.hasPrefix(".") }
        XCTAssertEqual(Set(files), Set(["bundle.json", engine.precision!.file]))
    }

    func testAnEncryptedModelIsDecryptedInMemory() async throws {
        let store = try ModelStore(root: root)
        let entry = model(try await manifest(store), "silero-vad.sealed")
        let engine = try await store.openEncrypted(entry) { sealed in try Self.open(sealed, key: 42) }
        try runs(engine)
        do {
            _ = try await store.openEncrypted(entry) { sealed in try Self.open(sealed, key: 1) }
            XCTFail("a wrong key loaded")
        } catch let error as EngineError {
            guard case let .IntegrityFailed(_, reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("decryption failed"), reason)
        }
    }

    func testAnUpdateKeepsTheVersionAnEngineHolds() async throws {
        let store = try ModelStore(root: root)
        let current = model(try await manifest(store), "silero-vad.onnx")
        var old = current
        old.version = "4"
        let engine = try await store.ensure(old).load()
        _ = try await store.ensure(current)
        let versions = try FileManager.default.contentsOfDirectory(atPath: root + "/silero-vad.onnx")
        XCTAssertEqual(Set(versions), ["4", "5"])
        try runs(engine)
        engine.close()
        let after = try FileManager.default.contentsOfDirectory(atPath: root + "/silero-vad.onnx")
        XCTAssertEqual(after, ["5"])
        XCTAssertEqual(store.stored().map(\.version), ["5"])
    }

    struct WrongKey: Error {}

    /// The test's stand-in for an app's cipher (xtask seals the same way): a tag, then each byte XOR (key + its index
    /// mod 256). A wrong key is caught as an authenticated cipher would catch it: the plain model must start as every
    /// ONNX model does (field 1, `ir_version`, a varint: 0x08).
    static func open(_ sealed: Data, key: UInt8) throws -> Data {
        let bytes = [UInt8](sealed)
        guard bytes.count > 6, Array(bytes[0..<6]) == Array("SEALED".utf8) else { throw WrongKey() }
        var plain = [UInt8](repeating: 0, count: bytes.count - 6)
        for i in 0..<plain.count { plain[i] = bytes[i + 6] ^ (key &+ UInt8(truncatingIfNeeded: i)) }
        guard plain.first == 0x08 else { throw WrongKey() }
        return Data(plain)
    }
}

/// The bytes seen so far, written from the store's thread and read from the test's.
private final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: Int64 = 0
    func set(_ value: Int64) { lock.lock(); bytes = value; lock.unlock() }
    func get() -> Int64 { lock.lock(); defer { lock.unlock() }; return bytes }
}
