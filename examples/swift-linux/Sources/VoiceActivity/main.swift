import Foundation
import OpenAutoGLM

// Voice activity with Silero VAD: the model reads 32 ms of 16 kHz audio at a time and carries a state from one frame
// to the next. Runs on a 16 kHz mono 16-bit WAV if one is given, else on one second of silence followed by one second
// of a synthetic voiced sound, and prints the mean speech probability of each half.

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write("usage: VoiceActivity <silero-vad.onnx> [audio.wav]\n".data(using: .utf8)!)
    exit(2)
}
let frame = 512

func demoAudio() -> [Float] {
    var samples = [Float](repeating: 0, count: 32_000)
    for i in 16_000..<32_000 {
        let t = Double(i) / 16_000
        let buzz: Double = 0.3 * sin(2 * Double.pi * 140 * t)
        let formants: Double = 0.2 * sin(2 * Double.pi * 700 * t) + 0.1 * sin(2 * Double.pi * 1200 * t)
        samples[i] = Float(buzz + formants)
    }
    return samples
}

func readWav(_ path: String) throws -> [Float] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    return stride(from: 44, to: bytes.count - 1, by: 2).map { i -> Float in
        let sample = Int16(bitPattern: UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8)
        return Float(sample) / 32768
    }
}

do {
    let audio = arguments.count > 2 ? try readWav(arguments[2]) : demoAudio()
    let engine = try Engine(path: arguments[1])
    defer { engine.close() }
    print("model: \(engine.info.inputs.map(\.name).joined(separator: ", ")) -> \(engine.info.outputs.map(\.name).joined(separator: ", "))")
    var state = try Tensor([Float](repeating: 0, count: 2 * 128), shape: [2, 1, 128])
    let rate = try Tensor([Int64(16_000)], shape: [])
    var probabilities: [Float] = []
    for start in stride(from: 0, through: audio.count - frame, by: frame) {
        let input = try Tensor(Array(audio[start..<start + frame]), shape: [1, frame])
        let out = try await engine.infer(["input": input, "state": state, "sr": rate])
        probabilities.append(try out["output"]!.values(as: Float.self)[0])
        state = out["stateN"]!
    }
    let half = probabilities.count / 2
    func mean(_ xs: ArraySlice<Float>) -> Float { xs.reduce(0, +) / Float(max(xs.count, 1)) }
    print("frames: \(probabilities.count) of \(frame) samples")
    print(String(format: "speech probability, first half: %.3f", mean(probabilities[..<half])))
    print(String(format: "speech probability, second half: %.3f", mean(probabilities[half...])))
} catch {
    FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!)
    exit(1)
}
