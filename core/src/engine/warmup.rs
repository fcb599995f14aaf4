//! Warmup: the slow first inference (allocations, kernel selection, caches) paid when the app chooses, on every
//! session of the engine, with zeros, with the dim sizes the app will use, or with example inputs.

use std::time::Instant;

use super::{Engine, MAX_WARMUP_RUNS};
use crate::error::{Error, Result, catch_panic};
use crate::model::Dim;
use crate::schedule::RunOptions;
use crate::tensor::{ElementType, TensorRef, element_count};

impl Engine {
    /// Runs the model `runs` times on zero-filled inputs of the declared shapes (dynamic dims as 1; each shape bucket
    /// at its own dims too), so the slow first inference (allocations, kernel selection, caches) happens when the
    /// app chooses, not on a user's request. Returns the milliseconds each round took. A model that cannot run
    /// with 1 for its dynamic dims fails with a reason that says to use [`Engine::warmup_dims`] or
    /// [`Engine::warmup_with`].
    pub fn warmup(&self, runs: u32) -> Result<Vec<f64>> {
        self.rounds(runs, |slot| {
            self.run_warmup_inputs(None, slot).map_err(|e| self.with_warmup_hint(e))?;
            for bucket in &self.buckets {
                self.run_warmup_inputs(Some(bucket), slot)?;
            }
            Ok(())
        })
    }

    /// [`Engine::warmup`] with zero-filled inputs whose named dynamic dims take the given sizes (the shapes an app
    /// will run, e.g. `[("time", 1000)]`); other dynamic dims are 1. An unknown dim name is `InvalidConfig`.
    pub fn warmup_dims(&self, dims: &[(&str, i64)], runs: u32) -> Result<Vec<f64>> {
        catch_panic(|| {
            let symbols: Vec<&str> = self
                .info
                .inputs
                .iter()
                .flat_map(|i| &i.shape)
                .filter_map(|d| if let Dim::Symbolic { name } = d { Some(name.as_str()) } else { None })
                .collect();
            let sizes = dims
                .iter()
                .map(|(name, size)| {
                    if !symbols.contains(name) {
                        return Err(Error::InvalidConfig {
                            reason: format!("warmup: the model has no dynamic dim `{name}` (it has {symbols:?})"),
                        });
                    }
                    if *size < 0 {
                        return Err(Error::InvalidConfig {
                            reason: format!("warmup: dim `{name}` = {size} is negative"),
                        });
                    }
                    Ok((name.to_string(), *size))
                })
                .collect::<Result<Vec<_>>>()?;
            self.rounds(runs, |slot| self.run_warmup_inputs(Some(&sizes), slot))
        })
    }

    /// [`Engine::warmup`] with example inputs: the shapes (and values) an app will run, on every session.
    pub fn warmup_with(&self, inputs: &[(&str, TensorRef<'_>)], runs: u32) -> Result<Vec<f64>> {
        catch_panic(|| {
            self.rounds(runs, |slot| self.scheduled_run(inputs, &RunOptions::default(), Some(slot), |_| Ok(())))
        })
    }

    /// `runs` rounds of `round` on every session slot; milliseconds per round.
    fn rounds(&self, runs: u32, round: impl Fn(usize) -> Result<()>) -> Result<Vec<f64>> {
        if runs > MAX_WARMUP_RUNS {
            return Err(Error::InvalidConfig {
                reason: format!("warmup runs must be between 0 and {MAX_WARMUP_RUNS}, got {runs}"),
            });
        }
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                for slot in 0..self.config.concurrency as usize {
                    round(slot)?;
                }
                Ok(started.elapsed().as_secs_f64() * 1e3)
            })
            .collect()
    }

    /// A zero-input warmup that failed on a model with dynamic dims says what to pass instead.
    fn with_warmup_hint(&self, error: Error) -> Error {
        let dynamic: Vec<String> = self
            .info
            .inputs
            .iter()
            .flat_map(|i| &i.shape)
            .filter_map(|d| match d {
                Dim::Symbolic { name } => Some(name.clone()),
                Dim::Dynamic => Some("?".to_owned()),
                Dim::Fixed { .. } => None,
            })
            .collect();
        if dynamic.is_empty() {
            return error;
        }
        let hint = format!(
            "warmup ran zeros with 1 for every dynamic dim {dynamic:?}, which this model does not accept; warm up with \
             the sizes the app uses for those dims, or with example inputs"
        );
        match error {
            Error::InvalidInput { name, reason } => Error::InvalidInput { name, reason: format!("{hint}: {reason}") },
            Error::InferenceFailed { reason } => Error::InferenceFailed { reason: format!("{hint}: {reason}") },
            other => other,
        }
    }

    /// One run on zero-filled inputs (dynamic dims at the bucket's sizes, else 1) on `slot`'s sessions.
    pub(super) fn run_warmup_inputs(&self, bucket: Option<&Vec<(String, i64)>>, slot: usize) -> Result<()> {
        let inputs: Vec<(String, ElementType, Vec<i64>)> = self
            .info
            .inputs
            .iter()
            .map(|input| {
                let element_type = input.element_type.ok_or_else(|| {
                    Error::invalid_input(
                        &input.name,
                        "warmup needs tensor inputs of a supported type; run the model with real inputs",
                    )
                })?;
                let shape = input
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed { size } => *size,
                        Dim::Symbolic { name } => {
                            bucket.and_then(|b| b.iter().find(|(n, _)| n == name)).map_or(1, |(_, size)| *size)
                        }
                        Dim::Dynamic => 1,
                    })
                    .collect();
                Ok((input.name.clone(), element_type, shape))
            })
            .collect::<Result<_>>()?;
        let buffers: Vec<Vec<u8>> = inputs
            .iter()
            .map(|(name, et, shape)| {
                self.limit()
                    .zeroed(element_count(name, shape)?, et.size(), || format!("warmup input `{name}` {shape:?}"))
            })
            .collect::<Result<_>>()?;
        let views: Vec<(&str, TensorRef<'_>)> = inputs
            .iter()
            .zip(&buffers)
            .map(|((name, et, shape), data)| (name.as_str(), TensorRef::from_bytes(*et, shape, data)))
            .collect();
        catch_panic(|| self.scheduled_run(&views, &RunOptions::default(), Some(slot), |_| Ok(())))
    }
}
