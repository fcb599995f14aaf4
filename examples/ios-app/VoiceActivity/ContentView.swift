import Foundation
import OpenAutoGLM
import SwiftUI

/// Runs Silero VAD over one second of silence and then a recording of speech, and shows for each the mean speech
/// probability and the frames over 0.5. Both are app resources: `silero-vad.onnx` (`cargo xtask models fetch
/// silero-vad`) and `speech.wav`, a mono 16-bit WAV of someone talking at 16 or 48 kHz (e.g. `cargo xtask models
/// fetch speech-front-center`). The same program as examples/swift-linux, which `cargo xtask test` runs.
struct ContentView: View {
    @State private var result = "listening…"

    var body: some View {
        Text(result).padding().task { result = await run() }
    }

    private func run() async -> String {
        do {
            guard let model = Bundle.main.path(forResource: "silero-vad", ofType: "onnx"),
                  let wav = Bundle.main.url(forResource: "speech", withExtension: "wav")
            else { return "add silero-vad.onnx and speech.wav to the app's resources" }
            let speech = try readWav(Data(contentsOf: wav))
            let engine = try Engine(path: model)
            defer { engine.close() }
            let vad = try VoiceActivity(engine)
            let silence = try await vad.probabilities([Float](repeating: 0, count: rate))
            let spoken = try await vad.probabilities(speech)
            return "speech probability: silence \(summary(silence)), speech \(summary(spoken))"
        } catch {
            return "\(error)"
        }
    }
}

private let rate = 16_000
private let frame = 512
private let contextLength = 64

/// Silero VAD v5 over consecutive frames: each 512-sample frame after the 64 samples before it, the state carried.
private final class VoiceActivity {
    let engine: Engine
    var state: Tensor
    var context = [Float](repeating: 0, count: contextLength)
    let sampleRate: Tensor

    init(_ engine: Engine) throws {
        self.engine = engine
        state = try Tensor([Float](repeating: 0, count: 2 * 128), shape: [2, 1, 128])
        sampleRate = try Tensor([Int64(rate)], shape: [])
    }

    func probabilities(_ audio: [Float]) async throws -> [Float] {
        var result: [Float] = []
        for start in stride(from: 0, through: audio.count - frame, by: frame) {
            let chunk = Array(audio[start..<start + frame])
            let input = try Tensor(context + chunk, shape: [1, contextLength + frame])
            let out = try await engine.infer(["input": input, "state": state, "sr": sampleRate])
            result.append(try out["output"]!.values(as: Float.self)[0])
            state = out["stateN"]!
            context = Array(chunk[(frame - contextLength)...])
        }
        return result
    }
}

private func summary(_ p: [Float]) -> String {
    let mean = Double(p.reduce(0, +)) / Double(max(p.count, 1))
    return String(format: "%.3f", mean) + " (\(p.filter { $0 > 0.5 }.count) of \(p.count) frames over 0.5)"
}

/// The samples of a mono 16-bit PCM WAV as 16 kHz floats in [-1, 1] (48 kHz averaged down by 3).
private func readWav(_ data: Data) throws -> [Float] {
    let bytes = [UInt8](data)
    func u32(_ i: Int) -> Int {
        var value = 0
        for k in (0..<4).reversed() { value = value << 8 | Int(bytes[i + k]) }
        return value
    }
    let sampleRate = u32(24)
    guard sampleRate % rate == 0 else { throw CocoaError(.fileReadCorruptFile) }
    var at = 12
    while String(decoding: bytes[at..<at + 4], as: UTF8.self) != "data" { at += 8 + u32(at + 4) }
    let count = min(u32(at + 4), bytes.count - at - 8) / 2
    var samples = [Int](repeating: 0, count: count)
    for i in 0..<count {
        let low = UInt16(bytes[at + 8 + 2 * i])
        let high = UInt16(bytes[at + 9 + 2 * i])
        samples[i] = Int(Int16(bitPattern: low | high << 8))
    }
    let step = sampleRate / rate
    var audio = [Float](repeating: 0, count: samples.count / step)
    for i in 0..<audio.count {
        var sum = 0
        for j in 0..<step { sum += samples[i * step + j] }
        audio[i] = Float(sum) / Float(step * 32768)
    }
    return audio
}
