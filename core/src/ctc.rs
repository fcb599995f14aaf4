//! Greedy CTC decoding of a text recognizer's output (PP-OCR and most line recognizers): the best class at each
//! step, repeats merged, the blank (class 0) dropped, each class looked up in the model's character dictionary.

use crate::error::{Error, Result};
use crate::tensor::{ElementType, Tensor};

/// A model's character dictionary, in PaddleOCR's layout: class 0 is the CTC blank, classes 1..=n are the
/// dictionary's characters in order, and a model whose output has one class more also reads a space.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcDecoder {
    characters: Vec<String>,
}

/// A decoded line.
#[derive(Debug, Clone, PartialEq)]
pub struct CtcText {
    pub text: String,
    /// The mean of the emitting steps' top probabilities (the cascade's `SequenceMeanMax`).
    pub confidence: f32,
}

impl CtcDecoder {
    /// From the dictionary's characters (one per entry), blank and space added as the model's class count needs.
    pub fn new(characters: Vec<String>) -> CtcDecoder {
        CtcDecoder { characters }
    }

    /// From a dictionary file: one character per line (PaddleOCR's `*_dict.txt`), or a JSON array of strings.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<CtcDecoder> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|_| Error::ModelNotFound { path: path.display().to_string() })?;
        let characters = if text.trim_start().starts_with('[') {
            serde_json::from_str::<Vec<String>>(&text)
                .map_err(|e| Error::invalid_model(format!("{}: not a JSON list of characters: {e}", path.display())))?
        } else {
            text.lines().map(|l| l.trim_end_matches('\r').to_owned()).collect()
        };
        if characters.is_empty() {
            return Err(Error::invalid_model(format!("{}: an empty dictionary", path.display())));
        }
        Ok(CtcDecoder { characters })
    }

    /// Classes the model must output: blank + characters (+ space).
    pub fn accepts(&self, classes: usize) -> bool {
        classes == self.characters.len() + 1 || classes == self.characters.len() + 2
    }

    /// Decodes a `[1, steps, classes]` (or `[steps, classes]`) probability output.
    pub fn decode(&self, output: &Tensor) -> Result<CtcText> {
        let classes = output.shape.last().copied().unwrap_or(0).max(0) as usize;
        if !self.accepts(classes) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "the output `{}` has {classes} classes; this dictionary of {} characters needs {} or {}",
                    output.name,
                    self.characters.len(),
                    self.characters.len() + 1,
                    self.characters.len() + 2
                ),
            });
        }
        let values: Vec<f32> = match output.element_type {
            ElementType::F32 => output.to_vec::<f32>()?,
            ElementType::F16 => output.to_vec::<half::f16>()?.into_iter().map(f32::from).collect(),
            other => return Err(Error::InvalidConfig { reason: format!("CTC decoding needs floats, got {other:?}") }),
        };
        let (mut text, mut sum, mut count, mut previous) = (String::new(), 0.0f32, 0usize, 0usize);
        for row in values.chunks_exact(classes) {
            let (best, p) = row
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, p)| if p > best.1 { (i, p) } else { best });
            if best != 0 && best != previous {
                text.push_str(self.characters.get(best - 1).map_or(" ", String::as_str));
                sum += p;
                count += 1;
            }
            previous = best;
        }
        Ok(CtcText { text, confidence: if count > 0 { sum / count as f32 } else { 0.0 } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(shape: &[i64], values: &[f32]) -> Tensor {
        crate::tensor::f32_tensor("y", shape, values)
    }

    #[test]
    fn repeats_merge_blanks_split_and_the_extra_class_is_a_space() {
        let decoder = CtcDecoder::new(vec!["a".into(), "b".into()]);
        // classes: blank, a, b, space. Steps: a a blank a b space b
        let steps = [1usize, 1, 0, 1, 2, 3, 2];
        let mut values = vec![0.0f32; steps.len() * 4];
        for (t, &c) in steps.iter().enumerate() {
            values[t * 4 + c] = 0.9;
        }
        let tensor = floats(&[1, steps.len() as i64, 4], &values);
        let out = decoder.decode(&tensor).unwrap();
        assert_eq!(out.text, "aab b");
        assert!((out.confidence - 0.9).abs() < 1e-6);
        let wrong = floats(&[1, 1, 9], &[0.0; 9]);
        assert!(matches!(decoder.decode(&wrong), Err(Error::InvalidConfig { .. })));
    }
}
