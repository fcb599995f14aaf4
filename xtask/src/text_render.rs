//! Text rendered as a phone camera sees it: lines and pages of real prose in fonts from Debian packages, dark on light
//! at a random contrast, skewed, blurred and noisy. Shared by the OCR cascade's labelled lines and the held-out sets
//! of the OCR models.

use std::fs;
use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use anyhow::{Context, Result, bail};
use image::{GrayImage, Luma, imageops};
use rand::Rng;
use rand::rngs::SmallRng;

/// Every TrueType font under `roots` (unpacked font packages), in a stable order.
pub fn fonts(roots: &[PathBuf]) -> Result<Vec<FontVec>> {
    let mut fonts = Vec::new();
    for root in roots {
        for file in walk(root)? {
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

/// One line of text, dark on light at a random contrast, then skewed, blurred and noisy.
pub fn render_line(font: &FontVec, text: &str, rng: &mut SmallRng) -> GrayImage {
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

/// A page of `rows` (one rendered line each) laid out top to bottom on a light `width` x `height` canvas with margins
/// that vary, as a photographed or scanned page: the text detector's input.
pub fn render_page(font: &FontVec, rows: &[String], width: u32, height: u32, rng: &mut SmallRng) -> GrayImage {
    let background = rng.random_range(200..=255u8);
    let mut page = GrayImage::from_pixel(width, height, Luma([background]));
    let mut y = rng.random_range(10..60u32);
    let left = rng.random_range(10..60u32);
    for row in rows {
        let line = render_line(font, row, rng);
        // Lines wider than the page are scaled down to fit, as a page photographed from further away.
        let scale = ((width - left - 10) as f32 / line.width() as f32).min(1.0);
        let (w, h) = ((line.width() as f32 * scale) as u32, (line.height() as f32 * scale) as u32);
        if y + h >= height {
            break;
        }
        let line = imageops::resize(&line, w.max(1), h.max(1), imageops::FilterType::Triangle);
        imageops::overlay(&mut page, &line, left as i64, y as i64);
        y += h + rng.random_range(0..12u32);
    }
    page
}
