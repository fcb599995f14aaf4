import Foundation

/// Reads a text recognizer's CTC output (PP-OCR and most line recognizers) with the model's character dictionary:
/// the best class at each step, repeats merged, blanks dropped. An OCR cascade's two models each have their own
/// dictionary (`cascade.json` names them); decode a result with the one of the path that produced it.
public final class CtcDecoder: Sendable {
    private let native: NativeCtcDecoder

    /// A dictionary file: one character per line (PaddleOCR's `*_dict.txt`) or a JSON list of strings.
    public init(path: String) throws {
        try Runtime.checkNativeLibrary()
        native = try NativeCtcDecoder.fromFile(path: path)
    }

    /// The text of a `[1, steps, classes]` probability output and its mean confidence; a dictionary that does not
    /// fit the output's classes throws `EngineError.InvalidConfig`.
    public func decode(_ output: Tensor) throws -> CtcText {
        try native.decode(output: NativeTensor(name: "output", elementType: output.elementType,
                                               shape: output.nativeShape, data: output.data))
    }
}
