// The Swift benchmark runner: the same protocol as the Rust runner (benchmarks/runner/src/main.rs), so
// `cargo xtask bench --vs swift` measures what the Swift layer adds over the Rust core.
import Foundation
import OpenAutoGLM

var args: [String: String] = [:]
var argv = CommandLine.arguments.dropFirst()
while let key = argv.popFirst(), let value = argv.popFirst() { args[String(key.dropFirst(2))] = value }

let runs = Int(args["runs"] ?? "200")!
let warmup = Int(args["warmup"] ?? "10")!
let seconds = Double(args["seconds"] ?? "0")!
// Calls this many ms apart (start to start), as an app calling a small model at a fixed rate does; 0: back to back.
let intervalMs = Double(args["interval-ms"] ?? "0")!
let threads = Int32(args["threads"] ?? "0")!
let levels: [String: OptimizeLevel] = ["O0": .o0, "O1": .o1, "O2": .o2, "O3": .o3]
let level = levels[args["optimize"] ?? "O3"]!
try Runtime.load(libraryPath: args["ort"])

func recipeValues(_ spec: [String: Any], count: Int) -> [Double] {
    if let values = (spec["values"] as? [NSNumber])?.map(\.doubleValue) { return (0..<count).map { values[$0 % values.count] } }
    if let fill = (spec["fill"] as? NSNumber)?.doubleValue { return [Double](repeating: fill, count: count) }
    let tones = (spec["tones"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
    let sr = (spec["sample_rate"] as? NSNumber)?.doubleValue ?? 16000
    return (0..<count).map { i in tones.reduce(0.0) { $0 + $1[1] * sin(2 * Double.pi * $1[0] * Double(i) / sr) } }
}

var inputs: [String: Tensor] = [:]
let recipeURL = URL(fileURLWithPath: args["recipe"]!)
let recipe = try JSONSerialization.jsonObject(with: Data(contentsOf: recipeURL)) as! [[String: Any]]
let types: [String: ElementType] = ["f32": .f32, "i64": .i64, "i32": .i32]
for spec in recipe {
    let shape = (spec["shape"] as! [NSNumber]).map(\.intValue)
    if let file = spec["file"] as? String {
        let data = try Data(contentsOf: recipeURL.deletingLastPathComponent().appendingPathComponent(file))
        inputs[spec["name"] as! String] = try Tensor(elementType: types[spec["type"] as! String]!, shape: shape, data: data)
        continue
    }
    let values = recipeValues(spec, count: shape.reduce(1, *))
    switch spec["type"] as! String {
    case "f32": inputs[spec["name"] as! String] = try Tensor(values.map { Float($0) }, shape: shape)
    case "i64": inputs[spec["name"] as! String] = try Tensor(values.map { Int64($0) }, shape: shape)
    case "i32": inputs[spec["name"] as! String] = try Tensor(values.map { Int32($0) }, shape: shape)
    case let other: fatalError("unsupported recipe type \(other)")
    }
}

func ms(_ since: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - since) / 1e6 }

var t = DispatchTime.now().uptimeNanoseconds
let engine = try Engine(path: args["model"]!, config: EngineConfig(accelerators: [.cpu], optimizeLevel: level, precision: .auto, intraOpThreads: threads))
let sessionMs = ms(t)
t = DispatchTime.now().uptimeNanoseconds
let first = try engine.inferSync(inputs)
let firstMs = ms(t)
// What an app running a small model many times a second does: outputs into buffers it keeps, sized by the first
// run (an app knows its shapes). String outputs have no fixed size: allocated.
// `OPENAUTOGLM_BENCH_OUTPUTS=allocated cargo xtask bench ...` measures the allocating call instead.
let callerBuffers = first.allSatisfy { $0.tensor.elementType != .string }
    && ProcessInfo.processInfo.environment["OPENAUTOGLM_BENCH_OUTPUTS"] != "allocated"
var into: [String: UnsafeMutableRawBufferPointer] = [:]
if callerBuffers {
    for (name, tensor) in first {
        into[name] = UnsafeMutableRawBufferPointer.allocate(byteCount: tensor.data.count, alignment: 16)
    }
}
func infer() throws {
    if callerBuffers { _ = try engine.inferSync(inputs, into: into) } else { _ = try engine.inferSync(inputs) }
}
/// Waits until call `index` is due, `intervalMs` apart from `since`.
func pace(_ index: Int, since: UInt64) {
    guard intervalMs > 0 else { return }
    let due = Double(since) + intervalMs * 1e6 * Double(index + 1)
    let wait = due - Double(DispatchTime.now().uptimeNanoseconds)
    if wait > 0 { Thread.sleep(forTimeInterval: wait / 1e9) }
}
var warm: [Double] = []
let warmStarted = DispatchTime.now().uptimeNanoseconds
for i in 0..<warmup { pace(i, since: warmStarted); t = DispatchTime.now().uptimeNanoseconds; try infer(); warm.append(ms(t)) }
var samples: [Double] = []
samples.reserveCapacity(runs)
let started = DispatchTime.now().uptimeNanoseconds
while samples.count < runs || Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 < seconds {
    pace(samples.count, since: started)
    t = DispatchTime.now().uptimeNanoseconds; try infer(); samples.append(ms(t))
}
let sorted = samples.sorted()
let metrics: [String: Any] = [
    "session_create_ms": sessionMs, "first_inference_ms": firstMs, "warmup_runs": warmup,
    "warmup_mean_ms": warm.isEmpty ? NSNull() : warm.reduce(0, +) / Double(warm.count), "runs": samples.count,
    "mean_ms": samples.reduce(0, +) / Double(samples.count), "p50_ms": sorted[(sorted.count - 1) / 2],
]
let result = try JSONSerialization.data(withJSONObject: [
    "metrics": metrics, "samples_ms": samples, "outputs": callerBuffers ? "caller buffers" : "allocated",
])
try result.write(to: URL(fileURLWithPath: args["out"]!))
engine.close()
