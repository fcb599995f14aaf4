//! Choosing a cascade's gate threshold: every line of the calibration set through both models alone, then for
//! each candidate threshold what the cascade would give (accuracy, escalation rate, mean and p99 latency), and
//! the fastest threshold that meets the target.

use anyhow::{Result, bail};
use openautoglm::cascade::{CascadeTarget, ThresholdRow};

use crate::results::ProfiledLine;

/// Exact match with spaces left out, as PaddleOCR's own recognition metric counts it (`RecMetric`'s
/// `ignore_space`, on by default): where a line recognizer puts a space is not what it is judged on.
pub fn same_text(read: &str, truth: &str) -> bool {
    normalize(read) == normalize(truth)
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect()
}

/// Character error rate: edit distance over the true text's length.
pub fn character_error_rate(read: &str, truth: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (normalize(read).chars().collect(), normalize(truth).chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()] as f64 / b.len().max(1) as f64
}

pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[((v.len() - 1) as f64 * q).round() as usize] }
}

/// What the cascade gives at `threshold` (escalating below it).
pub fn row(lines: &[ProfiledLine], truths: &[String], threshold: f32) -> ThresholdRow {
    let (mut correct, mut escalated, mut ms) = (0usize, 0usize, Vec::with_capacity(lines.len()));
    for (line, truth) in lines.iter().zip(truths) {
        let escalate = line.confidence < threshold;
        let text = if escalate { &line.main_text } else { &line.fast_text };
        correct += usize::from(same_text(text, truth));
        escalated += usize::from(escalate);
        ms.push(line.fast_ms + if escalate { line.main_ms } else { 0.0 });
    }
    let n = lines.len().max(1) as f64;
    ThresholdRow {
        threshold,
        escalation_rate: escalated as f64 / n,
        accuracy: correct as f64 / n,
        mean_ms: ms.iter().sum::<f64>() / n,
        p99_ms: percentile(&ms, 0.99),
    }
}

/// Every threshold worth trying (each line's confidence, nudged up so that line escalates, and 0: never), its row,
/// and the fastest that meets `target`.
pub fn choose(
    lines: &[ProfiledLine],
    truths: &[String],
    target: CascadeTarget,
) -> Result<(ThresholdRow, Vec<ThresholdRow>)> {
    let main_accuracy =
        lines.iter().zip(truths).filter(|(l, t)| same_text(&l.main_text, t)).count() as f64 / lines.len().max(1) as f64;
    let mut thresholds: Vec<f32> = lines.iter().map(|l| next_up(l.confidence)).collect();
    thresholds.push(0.0);
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let rows: Vec<ThresholdRow> = thresholds.iter().map(|&t| row(lines, truths, t)).collect();
    let meets = |r: &ThresholdRow| match target {
        CascadeTarget::AccuracyMargin(margin) => r.accuracy >= main_accuracy - margin,
        CascadeTarget::EscalationBudget(budget) => r.escalation_rate <= budget,
    };
    let Some(best) = rows.iter().filter(|r| meets(r)).min_by(|a, b| a.mean_ms.total_cmp(&b.mean_ms)).copied() else {
        bail!("no threshold meets the target on the calibration set (main model alone: accuracy {main_accuracy:.3})");
    };
    Ok((best, rows))
}

/// The smallest f32 above `x`: a threshold that escalates the line whose confidence is `x`.
fn next_up(x: f32) -> f32 {
    if x.is_finite() { f32::from_bits(x.to_bits() + 1) } else { x }
}

/// A readable subset of the rows: one per 5% of escalation rate, and the chosen one.
pub fn thinned(rows: &[ThresholdRow], chosen: &ThresholdRow) -> Vec<ThresholdRow> {
    let mut kept: Vec<ThresholdRow> = Vec::new();
    for r in rows {
        let step = (r.escalation_rate * 20.0).floor();
        if kept.last().is_none_or(|k| (k.escalation_rate * 20.0).floor() < step) {
            kept.push(*r);
        }
    }
    if !kept.contains(chosen) {
        kept.push(*chosen);
        kept.sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(conf: f32, fast: &str, main: &str) -> ProfiledLine {
        ProfiledLine { fast_text: fast.into(), confidence: conf, fast_ms: 1.0, main_text: main.into(), main_ms: 4.0 }
    }

    #[test]
    fn the_fastest_threshold_that_keeps_accuracy_wins() {
        let lines = [line(0.99, "a", "a"), line(0.95, "b", "b"), line(0.6, "x", "c"), line(0.5, "y", "d")];
        let truths: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let (best, rows) = choose(&lines, &truths, CascadeTarget::AccuracyMargin(0.0)).unwrap();
        assert_eq!(best.accuracy, 1.0);
        assert_eq!(best.escalation_rate, 0.5, "only the two unsure lines escalate");
        assert_eq!(best.mean_ms, 3.0);
        assert_eq!(rows.first().unwrap().escalation_rate, 0.0);
        let (budget, _) = choose(&lines, &truths, CascadeTarget::EscalationBudget(0.25)).unwrap();
        assert!(budget.escalation_rate <= 0.25);
        assert!((character_error_rate("hallo", "hello") - 0.2).abs() < 1e-9);
        assert!(same_text(" a  b ", "ab"));
        assert!(!same_text("a b", "a c"));
    }
}
