import Foundation
import OpenAutoGLM
import SwiftUI

/// Runs Silero VAD over one second of silence and one of a synthetic voiced sound, and shows the mean speech
/// probability of each.
struct ContentView: View {
    @State private var result = "running…"

    var body: some View {
        Text(result).padding().task { result = await run() }
    }

    private func run() async -> String {
        do {
            guard let path = Bundle.main.path(forResource: "silero-vad", ofType: "onnx") else {
                return "add silero-vad.onnx to the app's resources"
            }
            let engine = try Engine(path: path)
            defer { engine.close() }
            let frame = 512
            var audio = [Float](repeating: 0, count: 32_000)
            for i in 16_000..<32_000 { audio[i] = Float(0.3 * sin(2 * Double.pi * 140 * Double(i) / 16_000)) }
            var state = try Tensor([Float](repeating: 0, count: 2 * 128), shape: [2, 1, 128])
            let rate = try Tensor([Int64(16_000)], shape: [])
            var probabilities: [Float] = []
            for start in stride(from: 0, to: audio.count, by: frame) {
                let input = try Tensor(Array(audio[start..<start + frame]), shape: [1, frame])
                let out = try await engine.infer(["input": input, "state": state, "sr": rate])
                probabilities.append(try out["output"]!.values(as: Float.self)[0])
                state = out["stateN"]!
            }
            let half = probabilities.count / 2
            let silence = probabilities[..<half].reduce(0, +) / Float(half)
            let voiced = probabilities[half...].reduce(0, +) / Float(probabilities.count - half)
            return String(format: "speech probability: silence %.3f, voiced %.3f", silence, voiced)
        } catch {
            return "\(error)"
        }
    }
}
