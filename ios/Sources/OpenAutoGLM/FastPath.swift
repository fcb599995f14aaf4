import Foundation
import OpenAutoGLMFFI

/// The per-inference fast path, without uniffi's serialisation of the input list (bindings/src/fast_c.rs; Kotlin's
/// `FastPath` is the same path over JNI): the inputs' bytes and shapes are passed as pointers held for the call,
/// outputs go into the caller's buffers or are read once from the engine's result. A failed call's error is taken
/// through uniffi (`takeFastPathError()`), so it is the same `EngineError` every call throws.
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
        if let result = try fastPath(inputs, into: outputs, priority: priority, timeoutMicros: nil, cancel: cancel) {
            return result
        }
        return try inferSync(inputs, priority: priority, cancel: cancel)
    }

    /// The fast-path call; nil only where `Int` is not 64-bit (the uniffi call then runs).
    func fastPath(_ inputs: [String: Tensor], into outputs: [String: UnsafeMutableRawBufferPointer], priority: Priority,
                  timeoutMicros: Int64?, cancel: CancelToken?) throws -> Outputs? {
        guard MemoryLayout<Int>.size == MemoryLayout<Int64>.size else { return nil }
        // Inputs by model position; a name the model lacks travels as a name, and the engine refuses it by name.
        let list: [(String, UInt32, Tensor)] = inputs.map { name, tensor in
            (name, inputIndex[name].map(UInt32.init) ?? UInt32.max, tensor)
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
                let status = inputs.withUnsafeBufferPointer { ins in
                    buffers.withUnsafeBufferPointer { outs in
                        openautoglm_fast_run(fastHandle, ins.baseAddress, ins.count, outs.baseAddress, outs.count,
                                             priority.code, timeoutMicros ?? -1, cancelHandle, &result)
                    }
                }
                if status != 0 { try takeFastPathError() }
                return result
            }
        }
        defer { openautoglm_fast_result_free(result) }
        var names: [String] = []
        var tensors: [Tensor] = []
        guard let result else { return Outputs(names: names, tensors: tensors) }
        for (k, output) in info.outputs.enumerated() {
            var t = OagTensor(element_type: 0, shape: nil, rank: 0, data: nil, len: 0)
            guard openautoglm_fast_result_tensor(result, k, &t), let type = ElementType(code: t.element_type) else { continue }
            let shape = (0..<t.rank).map { Int(t.shape![$0]) }
            let data = t.len == 0 ? Data() : Data(bytes: t.data!, count: t.len)
            names.append(output.name)
            tensors.append(Tensor(trusted: type, shape: shape, data: data))
        }
        return Outputs(names: names, tensors: tensors)
    }

    /// Runs `body` with every input's bytes and shape (and, for a name the model lacks, the name) pinned: nested
    /// `withUnsafeBytes`, one level per input.
    private static func withInputs<R>(_ list: [(String, UInt32, Tensor)], _ i: Int, _ staged: inout [OagInput],
                                      _ body: ([OagInput]) throws -> R) rethrows -> R {
        if i == list.count { return try body(staged) }
        guard list[i].1 == UInt32.max else { return try pin(list, i, nil, 0, &staged, body) }
        let utf8 = Array(list[i].0.utf8)
        return try utf8.withUnsafeBufferPointer { name in try pin(list, i, name.baseAddress, name.count, &staged, body) }
    }

    /// Pins input `i`'s bytes and shape, stages it, and goes on with the next input.
    private static func pin<R>(_ list: [(String, UInt32, Tensor)], _ i: Int, _ name: UnsafePointer<UInt8>?,
                               _ nameLength: Int, _ staged: inout [OagInput],
                               _ body: ([OagInput]) throws -> R) rethrows -> R {
        let (_, index, tensor) = list[i]
        return try tensor.data.withUnsafeBytes { (data: UnsafeRawBufferPointer) in
            try tensor.shape.withUnsafeBufferPointer { shape in
                staged.append(OagInput(
                    index: index, name: name, name_len: nameLength, element_type: tensor.elementType.code,
                    data: data.baseAddress?.assumingMemoryBound(to: UInt8.self), len: data.count,
                    shape: UnsafeRawPointer(shape.baseAddress)?.assumingMemoryBound(to: Int64.self), rank: shape.count))
                return try withInputs(list, i + 1, &staged, body)
            }
        }
    }
}

extension ElementType {
    /// Element types by the code the fast path sends: their declaration order, which `elementTypeCode(elementType:)`
    /// (the Rust side's table) gives too; a test holds the two together.
    static let byCode: [ElementType] = [.f32, .f16, .f64, .i8, .u8, .i16, .u16, .i32, .u32, .i64, .u64, .bool, .bf16, .string]

    var code: UInt32 { UInt32(ElementType.byCode.firstIndex(of: self)!) }

    init?(code: UInt32) {
        guard code < ElementType.byCode.count else { return nil }
        self = ElementType.byCode[Int(code)]
    }
}

extension Priority {
    /// The declaration order, which the fast path sends.
    var code: Int32 {
        switch self {
        case .interactive: return 0
        case .normal: return 1
        case .background: return 2
        }
    }
}
