import Foundation
import OpenAutoGLM

// Voice activity with Silero VAD (v5): the model reads 32 ms of 16 kHz audio at a time, with the 64 samples before
// them as context, and carries a state from one frame to the next. Runs over one second of silence and then a
// recording of speech (a mono 16-bit WAV at 16 or 48 kHz), and prints for each the mean speech probability and how
// many frames cross 0.5, the model's usual threshold.

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write("usage: VoiceActivity <silero-vad.onnx> <speech.wav>\n".data(using: .utf8)!)
    exit(2)
}
let rate = 16_000
let frame = 512
let contextLength = 64

/// The samples of a mono 16-bit PCM WAV as 16 kHz floats in [-1, 1] (48 kHz averaged down by 3).
func readWav(_ path: String) throws -> [Float] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
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

/// Silero VAD over consecutive frames, its state and the context carried from one to the next.
final class VoiceActivity {
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

func summary(_ what: String, _ p: [Float]) -> String {
    let mean = Double(p.reduce(0, +)) / Double(max(p.count, 1))
    return "speech probability, \(what): " + String(format: "%.3f", mean) + " (\(p.filter { $0 > 0.5 }.count) of \(p.count) frames over 0.5)"
}

do {
    let speech = try readWav(arguments[2])
    print("runtime: ONNX Runtime \(try Runtime.load().ortVersion)")
    let engine = try Engine(path: arguments[1])
    defer { engine.close() }
    print("model: \(engine.info.inputs.map(\.name).joined(separator: ", ")) -> \(engine.info.outputs.map(\.name).joined(separator: ", "))")
    let vad = try VoiceActivity(engine)
    let silence = try await vad.probabilities([Float](repeating: 0, count: rate))
    let spoken = try await vad.probabilities(speech)
    print("frames: \(silence.count + spoken.count) of \(frame) samples")
    print(summary("silence", silence))
    print(summary("speech", spoken))
} catch {
    FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!)
    exit(1)
}
