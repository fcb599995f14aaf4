//! An input recipe: how to build each of a model's inputs. `benchmarks/models.json` gives one per model
//! (`inputs`); xtask turns image inputs into raw files and hands the runner the rest as they are.

use serde::{Deserialize, Serialize};
use serde_json::Number;

/// One model input.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RecipeInput {
    pub name: String,
    #[serde(rename = "type")]
    pub element_type: RecipeType,
    pub shape: Vec<i64>,
    /// What the input is, for the person reading the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(flatten)]
    pub source: InputSource,
}

impl RecipeInput {
    /// Elements the shape holds (a scalar holds one).
    pub fn element_count(&self) -> usize {
        self.shape.iter().product::<i64>().max(0) as usize
    }
}

/// The element types a recipe can build.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecipeType {
    F32,
    I64,
    I32,
}

/// Where an input's values come from: exactly one of these keys in the JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum InputSource {
    /// Raw little-endian elements in a file, relative to the recipe (xtask writes decoded images this way).
    File { file: String },
    /// A picture asset, decoded and normalized by xtask into a `File` before any runner sees it.
    Image { image: ImageSpec },
    /// Audio: a sum of sines, `[frequency Hz, amplitude]` each, at `sample_rate` (16 kHz when absent).
    Tones {
        tones: Vec<[f64; 2]>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sample_rate: Option<u32>,
    },
    /// These values, repeated to fill the shape (numbers kept as written: ids stay integers).
    Values { values: Vec<Number> },
    /// One value everywhere.
    Fill { fill: Number },
}

/// A picture input: resized to the recipe's `[1, 3, H, W]`, then `(pixel * scale - mean) / std` per channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageSpec {
    pub asset: String,
    /// Fractions of the picture to keep first: left, top, right, bottom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<[f64; 4]>,
    /// 1/255 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<[f64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<[f64; 3]>,
    /// Channels in BGR order, as PaddleOCR models expect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgr: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_reads_from_its_own_key_and_writes_back_the_same_json() {
        let text = r#"[
            {"name": "ids", "type": "i64", "shape": [1, 3], "values": [101, 2, 102]},
            {"name": "mask", "type": "i64", "shape": [1, 3], "fill": 1},
            {"name": "audio", "type": "f32", "shape": [1, 512], "tones": [[440.0, 0.5]], "sample_rate": 16000},
            {"name": "x", "type": "f32", "shape": [1, 3, 8, 8], "comment": "a logo",
             "image": {"asset": "logo", "scale": 0.5, "mean": [0.5, 0.5, 0.5], "bgr": true}},
            {"name": "y", "type": "f32", "shape": [2], "file": "inputs/y.f32"}
        ]"#;
        let inputs: Vec<RecipeInput> = serde_json::from_str(text).unwrap();
        assert!(matches!(&inputs[0].source, InputSource::Values { values } if values[0].as_i64() == Some(101)));
        assert!(matches!(&inputs[1].source, InputSource::Fill { .. }));
        assert!(matches!(&inputs[2].source, InputSource::Tones { sample_rate: Some(16000), .. }));
        assert!(matches!(&inputs[3].source, InputSource::Image { image } if image.bgr == Some(true)));
        assert!(matches!(&inputs[4].source, InputSource::File { file } if file == "inputs/y.f32"));
        assert_eq!(inputs[3].element_count(), 192);
        let raw: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&inputs).unwrap(), raw, "the typed form loses nothing");
    }

    #[test]
    fn an_input_without_a_source_or_of_another_type_is_refused() {
        assert!(serde_json::from_str::<RecipeInput>(r#"{"name": "x", "type": "f32", "shape": [1]}"#).is_err());
        let bf16 = r#"{"name": "x", "type": "bf16", "shape": [1], "fill": 0}"#;
        assert!(serde_json::from_str::<RecipeInput>(bf16).is_err());
    }
}
