// swift-tools-version:5.9
// Open-AutoGLM for Swift: `import OpenAutoGLM`, then `try await Engine(path:).infer([...])`.
//
// Apple platforms link the XCFramework made by `cargo xtask build ios` (binary target). Linux links
// libopenautoglm_ffi through a system-library target from build/linux, where `cargo xtask publish --local` puts a
// release build with ONNX Runtime beside it; the rpath points there, so a program depending on this package by path
// runs with no environment variables. OPENAUTOGLM_LIB_DIR overrides the directory (the tests use a debug build).
// The generated sources (Sources/OpenAutoGLM/Generated, the FFI header and module map) come from the same command
// (or `cargo xtask bindgen`).
import Foundation
import PackageDescription

#if os(Linux)
let ffi: Target = .systemLibrary(name: "OpenAutoGLMFFI", path: "Sources/OpenAutoGLMFFI")
let libDir = ProcessInfo.processInfo.environment["OPENAUTOGLM_LIB_DIR"] ?? "\(Context.packageDirectory)/build/linux"
let linkerSettings: [LinkerSetting] = [
    .linkedLibrary("openautoglm_ffi"),
    .unsafeFlags(["-L", libDir, "-Xlinker", "-rpath", "-Xlinker", libDir]),
]
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
