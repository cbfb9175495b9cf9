//! The "structure loss" of the reference (as in F3Net / SINet-V2): BCE plus an edge-weighted
//! IoU, summed over the deep-supervision maps.

use fgstp_model::Output;
use tch::{Kind, Reduction, Tensor};

use crate::run_config::BceWeighting;

/// The training loss of a forward pass and its parts (for logging): FGSTP's nine supervised
/// maps as the reference sums them — three of each pair's four maps, then the fused map and
/// both pairs' last —, SINet-V2's four, or ZoomNeXt's BCE with its uncertainty-aware term.
/// `progress`: the fraction of training done, in [0, 1] (ZoomNeXt's ramp reads it).
pub fn total_loss(
    out: &Output,
    mask: &Tensor,
    bce: BceWeighting,
    progress: f64,
) -> (Tensor, Vec<(&'static str, Tensor)>) {
    let sl = |pred: &Tensor| structure_loss(pred, mask, bce);
    match out {
        Output::ZoomNext(logits) => {
            let (bce, ual) = zoomnext_loss(logits, mask, progress);
            (&bce + &ual, vec![("bce", bce), ("uncertainty", ual)])
        }
        Output::Fgstp(o) => {
            let pair_t1 = sl(&o.pair_t1[0]) + sl(&o.pair_t1[1]) + sl(&o.pair_t1[2]);
            let pair_t2 = sl(&o.pair_t2[0]) + sl(&o.pair_t2[1]) + sl(&o.pair_t2[2]);
            let last = sl(&o.fused) + sl(&o.pair_t1[3]) + sl(&o.pair_t2[3]);
            let total = &pair_t1 + &pair_t2 + &last;
            (
                total,
                vec![("pair_t1", pair_t1), ("pair_t2", pair_t2), ("final", last)],
            )
        }
        Output::SinetV2(o) => {
            let total = o
                .maps
                .iter()
                .map(sl)
                .fold(Tensor::zeros([], (Kind::Float, mask.device())), |a, b| {
                    a + b
                });
            (total, vec![])
        }
    }
}

/// Structure loss of logits `pred` `[B,1,H,W]` against a mask `[B,1,H,W]` in [0, 1]; a scalar.
pub fn structure_loss(pred: &Tensor, mask: &Tensor, bce: BceWeighting) -> Tensor {
    // 1 + 5·|local mean − mask| over a 31×31 window: large near object boundaries.
    let local_mean = mask.avg_pool2d([31, 31], [1, 1], [15, 15], false, true, None::<i64>);
    let weight = (local_mean - mask).abs() * 5.0 + 1.0;
    let per_image = |t: Tensor| t.sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Float);
    let weight_sum = per_image(weight.shallow_clone());

    let bce_map = match bce {
        BceWeighting::Reference => {
            pred.binary_cross_entropy_with_logits::<Tensor>(mask, None, None, Reduction::Mean)
        }
        BceWeighting::EdgeWeighted => {
            pred.binary_cross_entropy_with_logits::<Tensor>(mask, None, None, Reduction::None)
        }
    };
    // For `Reference` this is mean·Σw/Σw: kept in the reference's order so values match bit
    // for bit, not only up to rounding.
    let wbce = per_image(&weight * bce_map) / &weight_sum;

    let prob = pred.sigmoid();
    let inter = per_image(&prob * mask * &weight);
    let union = per_image((prob + mask) * &weight);
    let wiou: Tensor = 1.0 - (&inter + 1.0) / (union - inter + 1.0);
    (wbce + wiou).mean(Kind::Float)
}

/// ZoomNeXt's loss: mean BCE with logits, plus its uncertainty-aware term
/// `mean(1 − (2σ(x) − 1)²)` weighted by a cosine ramp from 0 (first step) to 1 (last),
/// `(1 − cos(π·progress)) / 2`. Returns the two terms (the second already weighted).
pub fn zoomnext_loss(logits: &Tensor, mask: &Tensor, progress: f64) -> (Tensor, Tensor) {
    let bce = logits.binary_cross_entropy_with_logits::<Tensor>(mask, None, None, Reduction::Mean);
    let certainty = (logits.sigmoid() * 2.0 - 1.0).pow_tensor_scalar(2);
    let ramp = (1.0 - (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos()) / 2.0;
    let ual = (-certainty + 1.0).mean(Kind::Float) * ramp;
    (bce, ual)
}
