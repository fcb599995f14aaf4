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
#else
let ffi: Target = .binaryTarget(name: "OpenAutoGLMFFI", path: "build/OpenAutoGLMFFI.xcframework")
let linkerSettings: [LinkerSetting] = []
#endif

let package = Package(
    name: "OpenAutoGLM",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "OpenAutoGLM", targets: ["OpenAutoGLM"])],
    targets: [
        ffi,
        .target(name: "OpenAutoGLM", dependencies: ["OpenAutoGLMFFI"], linkerSettings: linkerSettings),
        .testTarget(name: "OpenAutoGLMTests", dependencies: ["OpenAutoGLM"]),
        // The benchmark runner used by `cargo xtask bench --vs swift` (not a product apps see).
        .executableTarget(name: "OpenAutoGLMBench", dependencies: ["OpenAutoGLM"], linkerSettings: linkerSettings),
    ]
)
