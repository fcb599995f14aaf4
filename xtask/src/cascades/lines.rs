//! The labelled text lines a recognizer cascade is measured on: real prose (the King James Version, from Debian,
//! Jonah for calibration and Ruth for evaluation) and number lines, rendered with fonts from Debian packages at
//! varied sizes, with skew, blur, noise and contrast of the kinds a phone camera gives, then brought to the
//! recognizer's input height. Stored as 8-bit gray lines (`lines-<set>.u8`) and their true text
//! (`lines-<set>.json`); the runner normalizes and pads them.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;
use bench_schema::cascade::TextLines;
use image::imageops;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::pair::{Pair, dir};
use crate::models::llm;
use crate::text_render::{fonts, render_line};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Set {
    Calibration,
    Evaluation,
}

impl Set {
    fn name(self) -> &'static str {
        match self {
            Set::Calibration => "calibration",
            Set::Evaluation => "evaluation",
        }
    }
}

/// Renders the set once (the same seed gives the same lines) and returns its `lines-<set>.json`.
pub fn labelled(pair: &Pair, set: Set) -> Result<PathBuf> {
    let dir = dir(pair);
    let json = dir.join(format!("lines-{}.json", set.name()));
    let pixels = dir.join(format!("lines-{}.u8", set.name()));
    if json.exists() && pixels.exists() {
        return Ok(json);
    }
    let recipe = &pair.lines;
    let roots = recipe.fonts.iter().map(|p| p.fetch()).collect::<Result<Vec<_>>>()?;
    let fonts = fonts(&roots)?;
    let (count, source, seed) = match set {
        Set::Calibration => (recipe.calibration, llm::calibration_text()?, 1801),
        Set::Evaluation => (recipe.evaluation, llm::held_out_text()?, 1802),
    };
    let words: Vec<String> = fs::read_to_string(&source)?.split_whitespace().map(str::to_owned).collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut texts, mut widths, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let bar = crate::cache::spinner(format!("rendering {count} {} text lines", set.name()));
    for _ in 0..count {
        let text = if rng.random::<f32>() < 0.15 { number_line(&mut rng) } else { prose_line(&words, &mut rng) };
        let font = &fonts[rng.random_range(0..fonts.len())];
        let line = render_line(font, &text, &mut rng);
        let width =
            ((line.width() as f32 * recipe.height as f32 / line.height() as f32).round() as u32).clamp(8, recipe.width);
        let resized = imageops::resize(&line, width, recipe.height, imageops::FilterType::Triangle);
        bytes.extend_from_slice(resized.as_raw());
        widths.push(width);
        texts.push(text);
    }
    bar.finish_and_clear();
    fs::create_dir_all(&dir)?;
    fs::write(&pixels, bytes)?;
    let lines = TextLines {
        height: recipe.height,
        width: recipe.width,
        widths,
        texts,
        pixels: pixels.file_name().expect("named").to_string_lossy().into_owned(),
    };
    fs::write(&json, serde_json::to_string(&lines)?)?;
    Ok(json)
}

/// Two to six consecutive words of the prose, at most 26 characters.
fn prose_line(words: &[String], rng: &mut SmallRng) -> String {
    let start = rng.random_range(0..words.len().saturating_sub(8).max(1));
    let wanted = rng.random_range(2..=6);
    let mut line = String::new();
    for word in words[start..].iter().take(wanted) {
        if !line.is_empty() && line.len() + 1 + word.len() > 26 {
            break;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    line
}

/// A line of the numbers phones read: prices, times, references, phone numbers.
fn number_line(rng: &mut SmallRng) -> String {
    let n = |rng: &mut SmallRng, lo: u32, hi: u32| rng.random_range(lo..hi);
    match rng.random_range(0..4) {
        0 => format!("Total {}.{:02} EUR", n(rng, 1, 999), n(rng, 0, 100)),
        1 => format!("{:02}:{:02} - {:02}:{:02}", n(rng, 0, 24), n(rng, 0, 60), n(rng, 0, 24), n(rng, 0, 60)),
        2 => format!("No. {} / {}", n(rng, 100, 99999), n(rng, 1, 99)),
        _ => format!("Tel {} {} {}", n(rng, 10, 999), n(rng, 100, 999), n(rng, 1000, 9999)),
    }
}
