import Foundation
import XCTest
@testable import OpenAutoGLM

/// Real models from registry packages, checked against values computed by Python onnxruntime.
final class RealModelTests: XCTestCase {
    func testMiniLmInt8MatchesPythonOnnxRuntime() throws {
        let e = Fixtures.expected("minilm-l6-int8")
        let ids = (e["input_ids"] as! [NSNumber]).map(\.int64Value)
        let n = ids.count
        let engine = try Engine(path: Fixtures.realModel("minilm-l6-int8"))
        let out = try engine.inferSync([
            "input_ids": Tensor(ids, shape: [1, n]),
            "attention_mask": Tensor([Int64](repeating: 1, count: ids.count), shape: [1, n]),
            "token_type_ids": Tensor([Int64](repeating: 0, count: ids.count), shape: [1, n]),
        ])["last_hidden_state"]!
        XCTAssertEqual(out.shape, [1, n, 384])
        let want = (e["last_hidden_state"] as! [Double]).map(Float.init)
        let got: [Float] = try out.values()
        XCTAssertEqual(got.count, want.count)
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-3)
    }

    func testSileroVadStateLoopMatchesPythonOnnxRuntime() throws {
        let e = Fixtures.expected("silero-vad")
        let frames = e["frames"] as! Int, len = e["frame_len"] as! Int, sr = e["sample_rate"] as! Int
        let tones = e["tones"] as! [[Double]]
        let audio: [Float] = (0..<frames * len).map { i in
            Float(tones.reduce(0.0) { $0 + $1[1] * sin(2 * Double.pi * $1[0] * Double(i) / Double(sr)) })
        }
        let probabilities = e["probabilities"] as! [Double], sums = e["state_abs_sums"] as! [Double]
        let engine = try Engine(path: Fixtures.realModel("silero-vad"))
        var state = try Tensor([Float](repeating: 0, count: 256), shape: [2, 1, 128])
        for f in 0..<frames {
            let out = try engine.inferSync([
                "input": Tensor(Array(audio[f * len..<(f + 1) * len]), shape: [1, len]),
                "state": state,
                "sr": Tensor([Int64(sr)], shape: []),
            ])
            let p: [Float] = try out["output"]!.values()
            XCTAssertEqual(Double(p[0]), probabilities[f], accuracy: 1e-4)
            state = out["stateN"]!
            let sum = try state.values(as: Float.self).reduce(0.0) { $0 + Double(abs($1)) }
            XCTAssertEqual(sum, sums[f], accuracy: 1e-3 * sums[f])
        }
    }
}
