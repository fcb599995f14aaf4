import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What `ModelStore.download(_:)` yields: progress while bytes arrive, then the installed model.
public enum DownloadEvent: Sendable {
    case progress(bytes: Int64, total: Int64)
    case done(InstalledModel)
}

/// Models delivered to the device: `ensure` returns a model that is complete and verified, downloading it only when
/// needed, through `URLSession` (or the app's own `HttpTransport`).
///
/// ```swift
/// let store = try ModelStore(root: modelsDirectory, budgetBytes: 200 << 20)
/// let manifest = try await store.fetchManifest(url: manifestURL, signatureURL: signatureURL, publicKey: appKey)
/// for try await event in store.download(manifest.models[0]) {
///     switch event {
///     case let .progress(bytes, total): progress.completedUnitCount = bytes; progress.totalUnitCount = total
///     case let .done(model): engine = try model.load()
///     }
/// }
/// ```
///
/// What it guarantees: nothing unverified is ever under a model's name (sha256 checked as bytes arrive, then an
/// atomic rename; a manifest is trusted only when its Ed25519 signature verifies with the app's key); a download
/// stopped by a cancelled task, a lost connection or a killed process leaves one resumable file and continues with a
/// range request; a new version installs beside the old one, which is removed once no engine holds it; `budgetBytes`
/// evicts the least recently used models no engine holds. Failures are `EngineError.DownloadFailed`,
/// `.IntegrityFailed`, `.InvalidConfig` (an entry refused before any byte is fetched) and `.Cancelled`.
public final class ModelStore: @unchecked Sendable {
    private let native: NativeModelStore

    public init(root: String, budgetBytes: Int64? = nil, maxModelBytes: Int64? = nil,
                transport: HttpTransport = URLSessionTransport(), attempts: Int32? = nil, backoffMs: Int64? = nil) throws {
        try Runtime.checkNativeLibrary()
        native = try NativeModelStore(root: root, transport: transport, maxModelBytes: maxModelBytes,
                                      budgetBytes: budgetBytes, attempts: attempts, backoffMs: backoffMs)
    }

    /// `entry`, complete and verified; `onProgress` gets (bytes, total). Cancelling the task stops the download.
    public func ensure(_ entry: ModelEntry,
                       onProgress: (@Sendable (Int64, Int64) -> Void)? = nil) async throws -> InstalledModel {
        let native = self.native
        return try await NativeWork.cancellable { token in
            InstalledModel(try native.ensure(entry: entry, listener: onProgress.map(Listener.init), cancel: token))
        }
    }

    /// `ensure` as an `AsyncSequence`: `.progress` while bytes arrive, then `.done`. Ending the iteration early
    /// cancels the download.
    public func download(_ entry: ModelEntry) -> AsyncThrowingStream<DownloadEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let model = try await self.ensure(entry) { bytes, total in
                        continuation.yield(.progress(bytes: bytes, total: total))
                    }
                    continuation.yield(.done(model))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A precision bundle whose `bundle.json` is `entry`, with only the variant an engine with `config` runs on this
    /// device: a phone does not fetch FP16 and INT8 both. `InstalledModel.load` loads it as a bundle.
    public func ensureBundle(_ entry: ModelEntry, config: EngineConfig = .default,
                             onProgress: (@Sendable (Int64, Int64) -> Void)? = nil) async throws -> InstalledModel {
        let native = self.native
        return try await NativeWork.cancellable { token in
            InstalledModel(try native.ensureBundle(entry: entry, config: config,
                                                   listener: onProgress.map(Listener.init), cancel: token))
        }
    }

    /// An encrypted model: `entry` is the sealed file, `decrypt` the app's cipher (its key from the Keychain is the
    /// app's business). The plain model is loaded from memory, never written to disk; a `decrypt` that throws is
    /// `.IntegrityFailed`. `config.cacheDir` must be nil (the compile cache writes the model).
    public func openEncrypted(_ entry: ModelEntry, config: EngineConfig = .default,
                              decrypt: @escaping @Sendable (Data) throws -> Data) async throws -> Engine {
        let native = self.native
        return try await NativeWork.cancellable { token in
            Engine(try native.openEncrypted(entry: entry, decryptor: Decryptor(decrypt), config: config,
                                            listener: nil, cancel: token))
        }
    }

    /// The manifest at `url`, trusted only if its Ed25519 signature at `signatureURL` verifies with `publicKey`.
    public func fetchManifest(url: String, signatureURL: String, publicKey: Data) async throws -> Manifest {
        let native = self.native
        return try await NativeWork.run {
            try native.fetchManifest(url: url, signatureUrl: signatureURL, publicKey: publicKey)
        }
    }

    /// Verifies `signature` (Ed25519, 64 bytes) over `json` with `publicKey` (32 bytes) and reads the manifest.
    public static func verifyManifest(json: Data, signature: Data, publicKey: Data) throws -> Manifest {
        try Runtime.checkNativeLibrary()
        return try OpenAutoGLM.verifyManifest(json: json, signature: signature, publicKey: publicKey)
    }

    /// Every version stored, least recently used first.
    public func stored() -> [StoredModel] { native.stored() }

    /// Removes the least recently used versions no engine holds until the store is at most `budgetBytes`.
    @discardableResult
    public func evict(budgetBytes: Int64) throws -> [StoredModel] { try native.evict(budgetBytes: budgetBytes) }
}

/// An installed model (or bundle folder). While it lives, or an engine loaded from it does, its version is not
/// removed (by an update or the budget).
public final class InstalledModel: @unchecked Sendable {
    private let native: NativeInstalled
    /// The model file, or the bundle's folder.
    public let path: String

    init(_ native: NativeInstalled) {
        self.native = native
        path = native.path()
    }

    /// Loads it (`Engine(path:)`, or `Engine(bundle:)` for a bundle); the engine holds the version until closed.
    public func load(config: EngineConfig = .default) throws -> Engine {
        Engine(try native.load(config: config))
    }

    /// Lets the store remove this version once it is superseded or evicted (also when this object is freed).
    public func release() { native.release() }
}

private final class Listener: DownloadListener, @unchecked Sendable {
    let report: @Sendable (Int64, Int64) -> Void
    init(_ report: @escaping @Sendable (Int64, Int64) -> Void) { self.report = report }
    func progress(bytes: Int64, total: Int64) { report(bytes, total) }
}

private final class Decryptor: ModelDecryptor, @unchecked Sendable {
    let open: @Sendable (Data) throws -> Data
    init(_ open: @escaping @Sendable (Data) throws -> Data) { self.open = open }
    func decrypt(sealed: Data) throws -> Data {
        do { return try open(sealed) } catch { throw CallbackError.Failed(reason: "\(error)") }
    }
}

/// The store's HTTP through `URLSession`: the body streams in as the session delivers it, and redirects are handed
/// back to the store, which follows them only to HTTPS (or this machine).
public final class URLSessionTransport: HttpTransport, @unchecked Sendable {
    private let timeout: TimeInterval

    public init(timeout: TimeInterval = 30) { self.timeout = timeout }

    public func get(url: String, from: Int64) throws -> HttpResponse {
        guard let target = URL(string: url) else { throw CallbackError.Failed(reason: "`\(url)` is not a URL") }
        var request = URLRequest(url: target, timeoutInterval: timeout)
        if from > 0 { request.setValue("bytes=\(from)-", forHTTPHeaderField: "Range") }
        let response = StreamingResponse()
        let session = URLSession(configuration: .ephemeral, delegate: response, delegateQueue: nil)
        response.start(session.dataTask(with: request), session: session)
        try response.waitForHeaders()
        return response
    }
}

/// One response's body, handed from the session's delegate queue to the store's reads.
private final class StreamingResponse: NSObject, URLSessionDataDelegate, HttpResponse, @unchecked Sendable {
    private let condition = NSCondition()
    private var http: HTTPURLResponse?
    private var pending = Data()
    private var finished = false
    private var failure: String?
    private var task: URLSessionDataTask?
    private var session: URLSession?

    func start(_ task: URLSessionDataTask, session: URLSession) {
        self.task = task
        self.session = session
        task.resume()
    }

    func waitForHeaders() throws {
        condition.lock()
        defer { condition.unlock() }
        while http == nil && !finished { condition.wait() }
        if http == nil {
            let reason = failure ?? "no response"
            session?.invalidateAndCancel()
            throw CallbackError.Failed(reason: reason)
        }
    }

    func status() -> Int32 { Int32(http?.statusCode ?? 0) }

    func header(name: String) -> String? {
        guard let fields = http?.allHeaderFields else { return nil }
        for (key, value) in fields where (key as? String)?.lowercased() == name.lowercased() {
            return value as? String
        }
        return nil
    }

    func read(max: Int32) throws -> Data {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !finished { condition.wait() }
        if pending.isEmpty {
            if let failure { throw CallbackError.Failed(reason: failure) }
            return Data()
        }
        let count = Swift.min(Int(max), pending.count)
        let piece = pending.prefix(count)
        pending.removeFirst(count)
        return Data(piece)
    }

    func finish() {
        task?.cancel()
        session?.finishTasksAndInvalidate()
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        condition.lock()
        http = response as? HTTPURLResponse
        condition.broadcast()
        condition.unlock()
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        condition.lock()
        pending.append(data)
        condition.broadcast()
        condition.unlock()
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil) // the store decides where a redirect may go
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        condition.lock()
        if let error { failure = "\(error.localizedDescription)" }
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}
