import Foundation

/// Swift types that map to a tensor element type.
public protocol TensorElement: Sendable {
    static var elementType: ElementType { get }
}

extension Float: TensorElement { public static var elementType: ElementType { .f32 } }
extension Double: TensorElement { public static var elementType: ElementType { .f64 } }
extension Int8: TensorElement { public static var elementType: ElementType { .i8 } }
extension UInt8: TensorElement { public static var elementType: ElementType { .u8 } }
extension Int16: TensorElement { public static var elementType: ElementType { .i16 } }
extension UInt16: TensorElement { public static var elementType: ElementType { .u16 } }
extension Int32: TensorElement { public static var elementType: ElementType { .i32 } }
extension UInt32: TensorElement { public static var elementType: ElementType { .u32 } }
extension Int64: TensorElement { public static var elementType: ElementType { .i64 } }
extension UInt64: TensorElement { public static var elementType: ElementType { .u64 } }
#if !(os(macOS) && arch(x86_64))
extension Float16: TensorElement { public static var elementType: ElementType { .f16 } }
#endif

extension ElementType {
    /// Bytes per element; a string element has no fixed size (4 is its length prefix).
    public var size: Int {
        switch self {
        case .i8, .u8, .bool: return 1
        case .f16, .bf16, .i16, .u16: return 2
        case .string: return 4
        case .f32, .i32, .u32: return 4
        case .f64, .i64, .u64: return 8
        }
    }
}

/// Errors of the Swift layer itself (the engine's own are `EngineError`).
public enum TensorError: Error, Equatable {
    /// The tensor holds another element type than the one asked for.
    case typeMismatch(holds: ElementType, requested: ElementType)
}

/// A tensor: element type, shape and elements as little-endian bytes. Built from and read into Swift arrays with
/// one bulk copy. A shape that does not hold exactly the data's elements is refused when the tensor is built
/// (`EngineError.InvalidInput`), not later at inference.
public struct Tensor: Sendable, Equatable {
    public let elementType: ElementType
    public let shape: [Int]
    public let data: Data

    /// A tensor over raw little-endian bytes.
    public init(elementType: ElementType, shape: [Int], data: Data) throws {
        if elementType == .string {
            try self.init(strings: try Tensor.decodeStrings(data), shape: shape)
            return
        }
        guard data.count % elementType.size == 0 else {
            throw EngineError.InvalidInput(
                name: "tensor", reason: "\(data.count) bytes is not a whole number of \(elementType) elements")
        }
        try Tensor.check(shape, holds: data.count / elementType.size)
        self.init(trusted: elementType, shape: shape, data: data)
    }

    public init<T: TensorElement>(_ values: [T], shape: [Int]) throws {
        try self.init(elementType: T.elementType, shape: shape, data: values.withUnsafeBytes { Data($0) })
    }

    public init(_ values: [Bool], shape: [Int]) throws {
        try self.init(elementType: .bool, shape: shape, data: Data(values.map { $0 ? 1 : 0 }))
    }

    /// A string tensor (UTF-8 in the engine).
    public init(strings: [String], shape: [Int]) throws {
        try Tensor.check(shape, holds: strings.count)
        // The engine's string form: per element its UTF-8 length (little-endian UInt32), then the bytes.
        var data = Data(capacity: strings.reduce(0) { $0 + 4 + $1.utf8.count })
        for string in strings {
            withUnsafeBytes(of: UInt32(string.utf8.count).littleEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: string.utf8)
        }
        self.init(trusted: .string, shape: shape, data: data)
    }

    /// bfloat16 input from its raw 16-bit patterns (the upper half of each Float's bits).
    public init(bfloat16Bits: [UInt16], shape: [Int]) throws {
        try self.init(elementType: .bf16, shape: shape, data: bfloat16Bits.withUnsafeBytes { Data($0) })
    }

    init(trusted elementType: ElementType, shape: [Int], data: Data) {
        self.elementType = elementType
        self.shape = shape
        self.data = data
    }

    /// Refuses a negative dimension, or a shape whose element count is not `count`.
    private static func check(_ shape: [Int], holds count: Int) throws {
        var elements = 1
        for dim in shape {
            guard dim >= 0 else {
                throw EngineError.InvalidInput(name: "tensor", reason: "shape \(shape) has a negative dimension")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            elements = overflow ? Int.max : product
        }
        guard elements == count else {
            throw EngineError.InvalidInput(
                name: "tensor", reason: "shape \(shape) holds \(elements) elements but the data has \(count)")
        }
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// The elements as `T`.
    public func values<T: TensorElement>(as type: T.Type = T.self) throws -> [T] {
        try values(as: type, checking: true)
    }

    private func values<T: TensorElement>(as type: T.Type, checking: Bool) throws -> [T] {
        if checking, T.elementType != elementType {
            throw TensorError.typeMismatch(holds: elementType, requested: T.elementType)
        }
        let count = self.count
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            // Data gives no alignment guarantee for T: copy bytes, not typed elements.
            _ = data.copyBytes(to: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// The elements of a `.string` tensor, in row-major order.
    public func strings() throws -> [String] {
        guard elementType == .string else { throw TensorError.typeMismatch(holds: elementType, requested: .string) }
        return try Tensor.decodeStrings(data)
    }

    /// The raw bits of a `.bf16` tensor (`Float(bitPattern: UInt32($0) << 16)` is each value).
    public func bfloat16Bits() throws -> [UInt16] {
        guard elementType == .bf16 else { throw TensorError.typeMismatch(holds: elementType, requested: .bf16) }
        return try values(as: UInt16.self, checking: false)
    }

    private static func decodeStrings(_ data: Data) throws -> [String] {
        let bytes = [UInt8](data)
        var strings: [String] = [], at = 0
        while at < bytes.count {
            guard at + 4 <= bytes.count else { throw EngineError.InvalidInput(name: "tensor", reason: "a string element is cut short") }
            let length = Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
            at += 4
            guard length <= bytes.count - at else {
                throw EngineError.InvalidInput(name: "tensor", reason: "string element \(strings.count) is cut short")
            }
            strings.append(String(decoding: bytes[at..<at + length], as: UTF8.self))
            at += length
        }
        return strings
    }

    /// The elements of a `.bool` tensor.
    public func bools() throws -> [Bool] {
        guard elementType == .bool else { throw TensorError.typeMismatch(holds: elementType, requested: .bool) }
        return data.map { $0 != 0 }
    }

    init(native: NativeTensor) {
        self.init(trusted: native.elementType, shape: native.shape.map { Int($0) }, data: native.data)
    }

    /// The shape as the engine takes it.
    var nativeShape: [Int64] { shape.map { Int64($0) } }
}
