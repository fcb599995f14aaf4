// A minimal iOS app using Open-AutoGLM. In Xcode: File > New > Project > iOS App named VoiceActivity, replace its
// sources with this folder, File > Add Package Dependencies > Add Local... > <clone>/ios (after
// `cargo xtask build ios`), and add silero-vad.onnx (`cargo xtask models fetch silero-vad`) to the app's resources.
// Not built on the CI machines, which have no Xcode (see the README's "What was verified where").
import SwiftUI

@main
struct VoiceActivityApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
