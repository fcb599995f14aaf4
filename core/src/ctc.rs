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
    /// The mean of the emitting steps' top probabilities; for an empty line, of every step's (how sure the model is
    /// that the line is blank). The cascade's `SequenceMeanMax` gate reads the same number.
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
        let mut text = String::new();
        let path = best_path(values.chunks_exact(classes), |class| {
            text.push_str(self.characters.get(class - 1).map_or(" ", String::as_str));
        });
        Ok(CtcText { text, confidence: path.mean_confidence() })
    }
}

/// What a greedy (best-path) CTC reading saw: the top probabilities of the steps that emitted a character, and of
/// all steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BestPath {
    emitted: usize,
    emitted_sum: f32,
    emitted_least: f32,
    steps: usize,
    all_sum: f32,
    all_least: f32,
}

impl BestPath {
    /// The mean top probability of the emitting steps, or of every step for an empty line.
    pub(crate) fn mean_confidence(&self) -> f32 {
        match (self.emitted, self.steps) {
            (0, 0) => 0.0,
            (0, steps) => self.all_sum / steps as f32,
            (emitted, _) => self.emitted_sum / emitted as f32,
        }
    }

    /// The least top probability of the emitting steps, or of every step for an empty line.
    pub(crate) fn least_confidence(&self) -> f32 {
        if self.emitted > 0 { self.emitted_least } else { self.all_least }
    }
}

/// Reads `rows` (one probability row per step, class 0 the blank) the greedy CTC way: the best class at each step,
/// repeats merged, blanks dropped; `emit` gets each emitted class.
pub(crate) fn best_path<'r>(rows: impl Iterator<Item = &'r [f32]>, mut emit: impl FnMut(usize)) -> BestPath {
    let mut path = BestPath {
        emitted: 0,
        emitted_sum: 0.0,
        emitted_least: f32::INFINITY,
        steps: 0,
        all_sum: 0.0,
        all_least: f32::INFINITY,
    };
    let mut previous = 0;
    for row in rows {
        let (best, p) = row
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, p)| if p > best.1 { (i, p) } else { best });
        path.steps += 1;
        path.all_sum += p;
        path.all_least = path.all_least.min(p);
        if best != 0 && best != previous {
            emit(best);
            path.emitted += 1;
            path.emitted_sum += p;
            path.emitted_least = path.emitted_least.min(p);
        }
        previous = best;
    }
    path
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
        // An empty line is as sure as its steps' blanks.
        let blank = floats(&[1, 2, 4], &[0.8, 0.1, 0.05, 0.05, 0.6, 0.2, 0.1, 0.1]);
        let out = decoder.decode(&blank).unwrap();
        assert_eq!(out.text, "");
        assert!((out.confidence - 0.7).abs() < 1e-6, "{}", out.confidence);
        let wrong = floats(&[1, 1, 9], &[0.0; 9]);
        assert!(matches!(decoder.decode(&wrong), Err(Error::InvalidConfig { .. })));
    }
}
