//! CTC decoding across the FFI: a text recognizer's output read with its character dictionary (an OCR cascade's
//! two models each have their own; `cascade.json` names them).

use std::sync::Arc;

use openautoglm::ctc::{CtcDecoder, CtcText};

use crate::{NativeError, NativeTensor};

#[uniffi::remote(Record)]
pub struct CtcText {
    pub text: String,
    pub confidence: f32,
}

#[derive(uniffi::Object)]
pub struct NativeCtcDecoder {
    decoder: CtcDecoder,
}

#[uniffi::export]
impl NativeCtcDecoder {
    // A dictionary file: one character per line (PaddleOCR's `*_dict.txt`) or a JSON list of strings.
    #[uniffi::constructor]
    pub fn from_file(path: String) -> Result<Arc<Self>, NativeError> {
        Ok(Arc::new(NativeCtcDecoder { decoder: CtcDecoder::from_file(path)? }))
    }

    // The text of a `[1, steps, classes]` probability output, and its mean confidence.
    pub fn decode(&self, output: NativeTensor) -> Result<CtcText, NativeError> {
        self.decoder.decode(&output)
    }
}
