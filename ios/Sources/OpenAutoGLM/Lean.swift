import Foundation
import OpenAutoGLMFFI

/// The per-inference call without uniffi's serialisation of the input list (bindings/src/lean.rs): the inputs' bytes
/// and shapes are passed as pointers held for the call, outputs go into the caller's buffers or are read once from
/// the engine's result. Errors are the same `EngineError`s, lifted by the generated code.
extension Engine {
    /// `inferSync` that writes outputs into buffers the caller keeps across calls (fixed-shape outputs; each buffer
    /// holds exactly the output's bytes, float16 outputs as Float unless the config keeps them). Nothing is
    /// allocated for those outputs; outputs without a buffer come back in the result, in model order.
    ///
    /// ```swift
    /// let y = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 4, alignment: 16)
    /// for frame in frames { _ = try engine.inferSync(["x": frame], into: ["y": y]) }
    /// ```
    public func inferSync(_ inputs: [String: Tensor], into outputs: [String: UnsafeMutableRawBufferPointer],
                          priority: Priority = .normal, cancel: CancelToken? = nil) throws -> Outputs {
        if let result = try lean(inputs, into: outputs, priority: priority, timeoutMicros: nil, cancel: cancel) {
            return result
        }
        // An input the model lacks: the usual call reports it as every language does.
        return try inferSync(inputs, priority: priority, cancel: cancel)
    }

    /// The lean call; nil when an input name is not the model's or `Int` is not 64-bit (the uniffi call then runs).
    func lean(_ inputs: [String: Tensor], into outputs: [String: UnsafeMutableRawBufferPointer], priority: Priority,
              timeoutMicros: Int64?, cancel: CancelToken?) throws -> Outputs? {
        guard MemoryLayout<Int>.size == MemoryLayout<Int64>.size else { return nil }
        var list: [(Int, Tensor)] = []
        list.reserveCapacity(inputs.count)
        for (name, tensor) in inputs {
            guard let index = inputIndex[name] else { return nil }
            list.append((index, tensor))
        }
        var buffers: [OagOutputBuffer] = []
        if !outputs.isEmpty {
            buffers = Array(repeating: OagOutputBuffer(data: nil, len: 0), count: info.outputs.count)
            for (name, buffer) in outputs {
                guard let k = outputIndex[name] else {
                    throw EngineError.InvalidInput(name: name, reason: "the model has no such output")
                }
                buffers[k] = OagOutputBuffer(data: buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), len: buffer.count)
            }
        }
        let cancelHandle = cancel?.fastHandle() ?? 0
        var staged: [OagInput] = []
        staged.reserveCapacity(list.count)
        // The engine and the token must outlive the call: their handles point into them.
        let result: OpaquePointer? = try withExtendedLifetime((native, cancel)) {
            try Engine.withInputs(list, 0, &staged) { inputs in
                var result: OpaquePointer?
                var error = RustBuffer(capacity: 0, len: 0, data: nil)
                let status = inputs.withUnsafeBufferPointer { ins in
                    buffers.withUnsafeBufferPointer { outs in
                        openautoglm_lean_run(fastHandle, ins.baseAddress, ins.count, outs.baseAddress, outs.count,
                                             priority.code, timeoutMicros ?? -1, cancelHandle, &result, &error)
                    }
                }
                if status != 0 { throw try FfiConverterTypeNativeError_lift(error) }
                return result
            }
        }
        defer { openautoglm_lean_result_free(result) }
        var names: [String] = []
        var tensors: [Tensor] = []
        guard let result else { return Outputs(names: names, tensors: tensors) }
        for (k, output) in info.outputs.enumerated() {
            var t = OagTensor(element_type: 0, shape: nil, rank: 0, data: nil, len: 0)
            guard openautoglm_lean_result_tensor(result, k, &t), let type = ElementType(code: t.element_type) else { continue }
            let shape = (0..<t.rank).map { Int(t.shape![$0]) }
            let data = t.len == 0 ? Data() : Data(bytes: t.data!, count: t.len)
            names.append(output.name)
            tensors.append(Tensor(trusted: type, shape: shape, data: data))
        }
        return Outputs(names: names, tensors: tensors)
    }

    /// Runs `body` with every input's bytes and shape pinned (nested `withUnsafeBytes`, one level per input).
    private static func withInputs<R>(_ list: [(Int, Tensor)], _ i: Int, _ staged: inout [OagInput],
                                      _ body: ([OagInput]) throws -> R) rethrows -> R {
        if i == list.count { return try body(staged) }
        let (index, tensor) = list[i]
        return try tensor.data.withUnsafeBytes { (data: UnsafeRawBufferPointer) in
            try tensor.shape.withUnsafeBufferPointer { shape in
                staged.append(OagInput(
                    index: UInt32(index), element_type: tensor.elementType.code,
                    data: data.baseAddress?.assumingMemoryBound(to: UInt8.self), len: data.count,
                    shape: UnsafeRawPointer(shape.baseAddress)?.assumingMemoryBound(to: Int64.self), rank: shape.count))
                return try withInputs(list, i + 1, &staged, body)
            }
        }
    }
}

extension ElementType {
    /// The declaration order, which the lean call sends (bindings/src/codes.rs).
    var code: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .f64: return 2
        case .i8: return 3
        case .u8: return 4
        case .i16: return 5
        case .u16: return 6
        case .i32: return 7
        case .u32: return 8
        case .i64: return 9
        case .u64: return 10
        case .bool: return 11
        case .bf16: return 12
        case .string: return 13
        }
    }

    init?(code: UInt32) {
        let all: [ElementType] = [.f32, .f16, .f64, .i8, .u8, .i16, .u16, .i32, .u32, .i64, .u64, .bool, .bf16, .string]
        guard code < all.count else { return nil }
        self = all[Int(code)]
    }
}

extension Priority {
    var code: Int32 {
        switch self {
        case .interactive: return 0
        case .normal: return 1
        case .background: return 2
        }
    }
}
