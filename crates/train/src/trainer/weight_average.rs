//! An exponential moving average of the model's weights (`train.ema_decay`), kept beside the
//! weights the optimiser trains. Validation, `best` and `last` see the average; the trained
//! ("live") weights ride along in checkpoints under [`LIVE_PREFIX`] so that a resumed run
//! continues both.
//!
//! Every variable is averaged, BatchNorm's running statistics included (as timm's
//! `ModelEmaV2` does), so the averaged model's statistics belong to averaged weights; integer
//! variables are copied. The average starts as a copy of the weights it is started from and
//! decays at the configured rate from the first update on: it is started from trained weights
//! (`train.ema_from_epoch`), not from the initial ones that a warm-up of the decay would
//! have to wash out — a warm-up such as timm's `(1 + n)/(10 + n)` would also hold the decay
//! below 0.99 for the first 890 updates, longer than a short run's whole average.

use anyhow::{Context, Result};
use tch::{nn::VarStore, Tensor};

/// Prefix of the trained weights in a checkpoint whose model keys hold the average. Under the
/// optimiser's prefix (`super::optim::STATE_PREFIX`), so that every reader that wants only the
/// weights drops them.
pub const LIVE_PREFIX: &str = "optimizer.live_weights.";

pub struct WeightAverage {
    decay: f64,
    /// `(name, live, average)`, in name order; `live` shares storage with the var store's.
    pairs: Vec<(String, Tensor, Tensor)>,
    /// Updates so far.
    updates: u64,
}

impl WeightAverage {
    /// An average that starts from the weights `vs` holds now.
    pub fn start(vs: &VarStore, decay: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let pairs = tch::no_grad(|| {
            vars.into_iter()
                .map(|(name, live)| {
                    let average = live.detach().copy();
                    (name, live, average)
                })
                .collect()
        });
        Self {
            decay,
            pairs,
            updates: 0,
        }
    }

    /// An average resumed from a checkpoint: `vs` holds the checkpoint's model keys (the
    /// average), `live` reads its [`LIVE_PREFIX`] entry of a name; `updates` is the count the
    /// average had reached. Afterwards `vs` holds the live weights again.
    pub fn resume(
        vs: &VarStore,
        decay: f64,
        updates: u64,
        live: impl Fn(&str) -> Option<Tensor>,
    ) -> Result<Self> {
        let mut resumed = Self::start(vs, decay);
        resumed.updates = updates;
        tch::no_grad(|| {
            for (name, var, _) in &mut resumed.pairs {
                let saved = live(name).with_context(|| {
                    format!("the checkpoint has no {LIVE_PREFIX}{name} (the trained weights)")
                })?;
                var.f_copy_(&saved)
                    .with_context(|| format!("the checkpoint's {name} does not fit the model"))?;
            }
            anyhow::Ok(())
        })?;
        Ok(resumed)
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Moves the average towards the live weights (after an optimiser step).
    pub fn update(&mut self) {
        let decay = self.decay;
        tch::no_grad(|| {
            for (_, live, avg) in &mut self.pairs {
                if avg.is_floating_point() {
                    // avg ← decay·avg + (1 − decay)·live
                    let _ = avg.lerp_(live, 1.0 - decay);
                } else {
                    avg.copy_(live);
                }
            }
        });
        self.updates += 1;
    }

    /// Exchanges the live and the averaged weights in place: the model then computes with the
    /// average until the next swap.
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for (_, live, avg) in &mut self.pairs {
                let kept = live.copy();
                live.copy_(avg);
                avg.copy_(&kept);
            }
        });
    }

    /// The checkpoint's tensors: the average under the model's keys, the live weights under
    /// [`LIVE_PREFIX`].
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<(String, Tensor)> = self
            .pairs
            .iter()
            .map(|(name, _, avg)| (name.clone(), avg.shallow_clone()))
            .collect();
        tensors.extend(
            self.pairs
                .iter()
                .map(|(name, live, _)| (format!("{LIVE_PREFIX}{name}"), live.shallow_clone())),
        );
        tensors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    fn store(value: f64) -> (VarStore, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(value));
        (vs, w)
    }

    #[test]
    fn the_average_moves_towards_the_live_weights_by_the_decay() {
        let (vs, mut w) = store(0.0);
        let mut avg = WeightAverage::start(&vs, 0.75);
        tch::no_grad(|| {
            let _ = w.fill_(8.0);
        });
        // 0.75·0 + 0.25·8 = 2, then 0.75·2 + 0.25·8 = 3.5.
        avg.update();
        avg.update();
        assert_eq!(avg.updates(), 2);
        avg.swap();
        assert_eq!(w.double_value(&[0]), 3.5);
        // The live weights went to the average's place and come back.
        avg.swap();
        assert_eq!(w.double_value(&[1]), 8.0);
    }

    #[test]
    fn a_checkpoint_holds_the_average_under_the_model_keys_and_resumes_it() {
        let (vs, mut w) = store(1.0);
        let mut avg = WeightAverage::start(&vs, 0.9);
        tch::no_grad(|| {
            let _ = w.fill_(3.0);
        });
        avg.update();
        let saved: Vec<(String, Tensor)> = avg
            .checkpoint_tensors()
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let entry = |key: &str| saved.iter().find(|(k, _)| k == key).map(|(_, t)| t.copy());
        let model = entry("w").unwrap();
        assert!((model.double_value(&[0]) - (0.9 + 0.1 * 3.0)).abs() < 1e-6);
        assert_eq!(
            entry(&format!("{LIVE_PREFIX}w"))
                .unwrap()
                .double_value(&[0]),
            3.0
        );

        // A fresh store loads the model keys (the average), then the resume puts the live
        // weights back into it and keeps the average beside them.
        let (vs2, mut w2) = store(0.0);
        tch::no_grad(|| w2.copy_(&model));
        let resumed = WeightAverage::resume(&vs2, 0.9, avg.updates(), |key| {
            entry(&format!("{LIVE_PREFIX}{key}"))
        })
        .unwrap();
        assert_eq!(resumed.updates(), 1);
        assert_eq!(w2.double_value(&[0]), 3.0);
        assert!(resumed.checkpoint_tensors()[0].1.equal(&model));
        assert!(WeightAverage::resume(&vs2, 0.9, 1, |_| None).is_err());
    }
}
