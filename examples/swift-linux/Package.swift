// swift-tools-version:5.9
// A Swift program on Linux that runs a real model with Open-AutoGLM. It depends on the package in ios/ by path; the
// package links its native library and finds ONNX Runtime by itself once `cargo xtask publish --local` has run (see
// the README, "Use it from Swift (Linux)"). Run: swift run VoiceActivity /path/to/silero-vad.onnx
import PackageDescription

let package = Package(
    name: "VoiceActivity",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "OpenAutoGLM", path: "../../ios")],
    targets: [
        .executableTarget(name: "VoiceActivity", dependencies: [.product(name: "OpenAutoGLM", package: "OpenAutoGLM")]),
    ]
)
