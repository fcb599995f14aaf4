//! The labelled text lines a recognizer cascade is measured on: real prose (the King James Version, from Debian,
//! Jonah for calibration and Ruth for evaluation) and number lines, rendered with fonts from Debian packages at
//! varied sizes, with skew, blur, noise and contrast of the kinds a phone camera gives, then brought to the
//! recognizer's input height. Stored as 8-bit gray lines (`lines-<set>.u8`) and their true text
//! (`lines-<set>.json`); the runner normalizes and pads them.

use std::fs;
use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use anyhow::{Context, Result, bail};
use image::{GrayImage, Luma, imageops};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::pair::{Pair, dir};
use crate::models::llm;

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

/// `lines-<set>.json`: what the runner reads.
#[derive(Serialize, Deserialize)]
pub struct Lines {
    pub height: u32,
    pub width: u32,
    /// Each line's width after resizing to `height` (at most `width`); its pixels are rows of that width.
    pub widths: Vec<u32>,
    pub texts: Vec<String>,
    /// The gray pixels, line after line, next to this file.
    pub pixels: String,
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
    let fonts = fonts(&recipe.fonts)?;
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
        let line = render(font, &text, &mut rng);
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
    let lines = Lines {
        height: recipe.height,
        width: recipe.width,
        widths,
        texts,
        pixels: pixels.file_name().expect("named").to_string_lossy().into_owned(),
    };
    fs::write(&json, serde_json::to_string(&lines)?)?;
    Ok(json)
}

fn fonts(packages: &[crate::models::Package]) -> Result<Vec<FontVec>> {
    let mut fonts = Vec::new();
    for package in packages {
        let root = package.fetch()?;
        for file in walk(&root)? {
            if file.extension().is_some_and(|e| e == "ttf") {
                let data = fs::read(&file)?;
                fonts.push(FontVec::try_from_vec(data).with_context(|| format!("{} is not a font", file.display()))?);
            }
        }
    }
    if fonts.is_empty() {
        bail!("the font packages hold no .ttf files");
    }
    Ok(fonts)
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() { files.extend(walk(&path)?) } else { files.push(path) }
    }
    files.sort();
    Ok(files)
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

/// One line of text, dark on light at a random contrast, then skewed, blurred and noisy.
fn render(font: &FontVec, text: &str, rng: &mut SmallRng) -> GrayImage {
    let size = rng.random_range(26.0..40.0f32);
    let scaled = font.as_scaled(PxScale::from(size));
    let margin = (size * rng.random_range(0.2..0.6f32)).round();
    let mut glyphs = Vec::new();
    let (mut x, mut previous) = (margin, None);
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            x += scaled.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(size, point(x, margin + scaled.ascent())));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    let width = (x + margin).ceil() as u32;
    let height = (scaled.ascent() - scaled.descent() + 2.0 * margin).ceil() as u32;
    let background = rng.random_range(160..=255u8) as f32;
    let ink = rng.random_range(0.0..(background - 70.0));
    let mut coverage = vec![0f32; (width * height) as usize];
    for glyph in glyphs {
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, c| {
                let (px, py) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
                if (0..width as i64).contains(&px) && (0..height as i64).contains(&py) {
                    let at = (py as u32 * width + px as u32) as usize;
                    coverage[at] = coverage[at].max(c);
                }
            });
        }
    }
    let page = GrayImage::from_fn(width, height, |px, py| {
        let c = coverage[(py * width + px) as usize];
        Luma([(background + (ink - background) * c).round() as u8])
    });
    let skewed = rotate(&page, rng.random_range(-3.0..3.0f32).to_radians(), background as u8);
    let sigma = rng.random_range(0.0..1.3f32);
    let mut blurred = if sigma > 0.3 { imageops::blur(&skewed, sigma) } else { skewed };
    let noise = rng.random_range(0.0..10.0f32);
    for pixel in blurred.pixels_mut() {
        // Box-Muller: one normal draw per pixel.
        let (u, v) = (rng.random::<f32>().max(1e-7), rng.random::<f32>());
        let normal = (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos();
        pixel.0[0] = (pixel.0[0] as f32 + noise * normal).clamp(0.0, 255.0) as u8;
    }
    blurred
}

/// `image` rotated by `angle` about its centre (bilinear), the corners filled with `fill`.
fn rotate(image: &GrayImage, angle: f32, fill: u8) -> GrayImage {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (w / 2.0, h / 2.0);
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= image.width() as i64 || y >= image.height() as i64 {
            fill as f32
        } else {
            image.get_pixel(x as u32, y as u32).0[0] as f32
        }
    };
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let (sx, sy) = (cos * dx + sin * dy + cx, -sin * dx + cos * dy + cy);
        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
        let (fx, fy) = (sx - sx.floor(), sy - sy.floor());
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        Luma([(top * (1.0 - fy) + bottom * fy).round() as u8])
    })
}
