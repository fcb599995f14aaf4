// swift-tools-version:5.9
// Open-AutoGLM for Swift: `import OpenAutoGLM`, then `try await Engine(path:).infer([...])`.
//
// Apple platforms link the XCFramework made by `cargo xtask build ios` (binary target). Linux (the test host here)
// links the host build of libopenautoglm_ffi through a system-library target; `cargo xtask test` sets
// OPENAUTOGLM_LIB_DIR. The generated sources (Sources/OpenAutoGLM/Generated, the FFI header and module map) come
// from `cargo xtask bindgen`.
import Foundation
import PackageDescription

#if os(Linux)
let ffi: Target = .systemLibrary(name: "OpenAutoGLMFFI", path: "Sources/OpenAutoGLMFFI")
let libDir = ProcessInfo.processInfo.environment["OPENAUTOGLM_LIB_DIR"]
let linkerSettings: [LinkerSetting] = [.linkedLibrary("openautoglm_ffi")]
    + (libDir.map { [.unsafeFlags(["-L", $0, "-Xlinker", "-rpath", "-Xlinker", $0])] } ?? [])
let dependencies: [Package.Dependency] = []
let ortProducts: [Target.Dependency] = []
#else
// A release sets these to the published OpenAutoGLMFFI.xcframework.zip and the checksum that
// `cargo xtask build ios` prints; while they are nil the package uses the local build in build/.
let releaseURL: String? = nil
let releaseChecksum: String? = nil
let ffi: Target = releaseURL.map { .binaryTarget(name: "OpenAutoGLMFFI", url: $0, checksum: releaseChecksum ?? "") }
    ?? .binaryTarget(name: "OpenAutoGLMFFI", path: "build/OpenAutoGLMFFI.xcframework")
let linkerSettings: [LinkerSetting] = []
// ONNX Runtime itself, linked statically on iOS (its C API; our library calls it directly).
let dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/microsoft/onnxruntime-swift-package-manager", from: "1.20.0"),
]
let ortProducts: [Target.Dependency] = [.product(name: "onnxruntime", package: "onnxruntime-swift-package-manager")]
#endif

let package = Package(
    name: "OpenAutoGLM",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "OpenAutoGLM", targets: ["OpenAutoGLM"])],
    dependencies: dependencies,
    targets: [
        ffi,
        .target(name: "OpenAutoGLM", dependencies: ["OpenAutoGLMFFI"] + ortProducts, linkerSettings: linkerSettings),
        .testTarget(name: "OpenAutoGLMTests", dependencies: ["OpenAutoGLM"]),
        // The benchmark runner used by `cargo xtask bench --vs swift` (not a product apps see).
        .executableTarget(name: "OpenAutoGLMBench", dependencies: ["OpenAutoGLM"], linkerSettings: linkerSettings),
    ]
)
