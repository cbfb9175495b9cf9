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
    let weights = EdgeWeights::new(mask);
    let sl = |pred: &Tensor| structure_loss_weighted(pred, mask, &weights, bce);
    match out {
        Output::ZoomNext(logits) => {
            let (bce, ual) = zoomnext_loss(logits, mask, progress);
            (&bce + &ual, vec![("bce", bce), ("uncertainty", ual)])
        }
        // FGSTP, and SLT-Net's short-term model, which is trained exactly so (its train_video.py).
        Output::Fgstp(o) => nine_maps(&o.pair_t1, &o.pair_t2, &o.fused, sl),
        // Its long-term model: the hybrid E-loss on each of the four maps.
        Output::SltNetLong(o) => {
            let total = o
                .maps
                .iter()
                .map(|m| hybrid_e_loss_weighted(m, mask, &weights, bce))
                .fold(Tensor::zeros([], (Kind::Float, mask.device())), |a, b| {
                    a + b
                });
            (total, vec![])
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

/// The structure loss's edge weights of a mask, `1 + 5·|local mean − mask|` over a 31×31
/// window (large near object boundaries), and their per-image sums. They depend on the mask
/// alone, so a batch computes them once for all its supervised maps; the reference recomputes
/// them for each map (the same values: the pooling is a third of the loss's time at 256 px).
pub struct EdgeWeights {
    weight: Tensor,
    sum: Tensor,
}

impl EdgeWeights {
    pub fn new(mask: &Tensor) -> Self {
        let local_mean = mask.avg_pool2d([31, 31], [1, 1], [15, 15], false, true, None::<i64>);
        let weight = (local_mean - mask).abs() * 5.0 + 1.0;
        let sum = per_image(&weight);
        Self { weight, sum }
    }
}

/// Sum over each image's pixels: [B, 1, H, W] → [B, 1].
fn per_image(t: &Tensor) -> Tensor {
    t.sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Float)
}

/// The BCE map of the structure losses: per pixel, or (the reference's quirk) its mean.
fn bce_map(pred: &Tensor, mask: &Tensor, bce: BceWeighting) -> Tensor {
    let reduction = match bce {
        BceWeighting::Reference => Reduction::Mean,
        BceWeighting::EdgeWeighted => Reduction::None,
    };
    pred.binary_cross_entropy_with_logits::<Tensor>(mask, None, None, reduction)
}

/// Structure loss of logits `pred` `[B,1,H,W]` against a mask `[B,1,H,W]` in [0, 1]; a scalar.
pub fn structure_loss(pred: &Tensor, mask: &Tensor, bce: BceWeighting) -> Tensor {
    structure_loss_weighted(pred, mask, &EdgeWeights::new(mask), bce)
}

/// [`structure_loss`] with the mask's edge weights computed beforehand.
pub fn structure_loss_weighted(
    pred: &Tensor,
    mask: &Tensor,
    weights: &EdgeWeights,
    bce: BceWeighting,
) -> Tensor {
    // For `Reference` this is mean·Σw/Σw: kept in the reference's order so values match bit
    // for bit, not only up to rounding.
    let wbce = per_image(&(&weights.weight * bce_map(pred, mask, bce))) / &weights.sum;
    let prob = pred.sigmoid();
    let inter = per_image(&(&prob * mask * &weights.weight));
    let union = per_image(&((prob + mask) * &weights.weight));
    let wiou: Tensor = 1.0 - (&inter + 1.0) / (union - inter + 1.0);
    (wbce + wiou).mean(Kind::Float)
}

/// The reference's nine supervised maps: three of each pair's four, then the fused map and both
/// pairs' last; the parts are logged.
fn nine_maps(
    pair_t1: &[Tensor; 4],
    pair_t2: &[Tensor; 4],
    fused: &Tensor,
    sl: impl Fn(&Tensor) -> Tensor,
) -> (Tensor, Vec<(&'static str, Tensor)>) {
    let first = sl(&pair_t1[0]) + sl(&pair_t1[1]) + sl(&pair_t1[2]);
    let second = sl(&pair_t2[0]) + sl(&pair_t2[1]) + sl(&pair_t2[2]);
    let last = sl(fused) + sl(&pair_t1[3]) + sl(&pair_t2[3]);
    let total = &first + &second + &last;
    (
        total,
        vec![("pair_t1", first), ("pair_t2", second), ("final", last)],
    )
}

/// SLT-Net's long-term "hybrid E-loss" of logits `pred` against a soft mask, both [B,1,H,W]: the
/// structure loss's edge-weighted BCE (with the same `reduce='none'` quirk, see
/// [`BceWeighting`]) and IoU, each with 1e-8 in numerator and denominator, plus an enhanced-
/// alignment term `1 − mean((1 + E)² / 4)` with `E = (2·φp·φg + 1e-8) / (φp² + φg² + 1e-8)` and
/// φ the map minus its per-image mean; averaged over the batch.
pub fn hybrid_e_loss(pred: &Tensor, mask: &Tensor, bce: BceWeighting) -> Tensor {
    hybrid_e_loss_weighted(pred, mask, &EdgeWeights::new(mask), bce)
}

/// [`hybrid_e_loss`] with the mask's edge weights computed beforehand.
pub fn hybrid_e_loss_weighted(
    pred: &Tensor,
    mask: &Tensor,
    weights: &EdgeWeights,
    bce: BceWeighting,
) -> Tensor {
    let mean_per_image = |t: &Tensor| {
        t.mean_dim([2i64, 3].as_slice(), true, Kind::Float)
            .expand_as(t)
    };
    let wbce =
        (per_image(&(&weights.weight * bce_map(pred, mask, bce))) + 1e-8) / (&weights.sum + 1e-8);

    let prob = pred.sigmoid();
    let phi_pred = &prob - mean_per_image(&prob);
    let phi_mask = mask - mean_per_image(mask);
    let alignment = (&phi_pred * &phi_mask * 2.0 + 1e-8)
        / (&phi_pred * &phi_pred + &phi_mask * &phi_mask + 1e-8);
    let enhanced = (&alignment + 1.0) * (&alignment + 1.0) / 4.0;
    let eloss: Tensor = 1.0 - enhanced.mean_dim([2i64, 3].as_slice(), false, Kind::Float);

    let inter = per_image(&(&prob * mask * &weights.weight));
    let union = per_image(&((&prob + mask) * &weights.weight));
    let wiou: Tensor = 1.0 - (&inter + 1.0 + 1e-8) / (union - inter + 1.0 + 1e-8);
    (wbce + eloss + wiou).mean(Kind::Float)
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
