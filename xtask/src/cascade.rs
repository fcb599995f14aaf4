//! `cargo xtask cascade calibrate`: a cascade pair measured on its labelled calibration lines and its manifest
//! written with the gate threshold that meets the target (the work is in the `cascades` helper).

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use openautoglm::cascade::CascadeTarget;

use crate::cascades;

#[derive(Subcommand)]
pub enum Action {
    /// Measure both models of a pair on its calibration lines and write the threshold that meets the target.
    Calibrate(CalibrateArgs),
}

#[derive(ClapArgs)]
pub struct CalibrateArgs {
    /// The pair (benchmarks/cascades.json).
    #[arg(long, default_value = "ocr-rec")]
    pub pair: String,
    /// Accuracy at least the main model's minus this (the default target).
    #[arg(long, default_value_t = cascades::DEFAULT_MARGIN, conflicts_with = "escalation_budget")]
    pub accuracy_margin: f64,
    /// Or: at most this share of inputs escalated.
    #[arg(long)]
    pub escalation_budget: Option<f64>,
    /// Timed runs of each model per line (the median counts).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

pub fn run(action: Action) -> Result<()> {
    match action {
        Action::Calibrate(args) => {
            let target = match args.escalation_budget {
                Some(budget) => CascadeTarget::EscalationBudget(budget),
                None => CascadeTarget::AccuracyMargin(args.accuracy_margin),
            };
            let path = cascades::calibrate(&args.pair, target, args.rounds)?;
            println!("wrote {}", path.display());
            Ok(())
        }
    }
}
