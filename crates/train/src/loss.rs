//! The losses the recipes compose: the "structure loss" of the reference (as in F3Net /
//! SINet-V2: BCE plus an edge-weighted IoU) and SLT-Net's hybrid E-loss, summed over a model's
//! deep-supervision maps.

use tch::{Kind, Reduction, Tensor};

use crate::run_config::BceWeighting;

/// A loss and its logged parts (name, value).
pub type Loss = (Tensor, Vec<(&'static str, Tensor)>);

/// FGSTP's and the short-term SLT-Net's loss: the structure loss on their nine maps as the
/// reference sums them — three of each pair's four, then the fused map and both pairs'
/// last —, each sum logged. `maps`: pair (t, t+1) ×4, pair (t, t+2) ×4, fused (`Output::maps`).
pub fn nine_map_structure_loss(maps: &[&Tensor], mask: &Tensor, bce: BceWeighting) -> Loss {
    assert_eq!(maps.len(), 9, "FGSTP's loss takes its nine maps");
    let weights = EdgeWeights::new(mask);
    let sl = |pred: &Tensor| structure_loss_weighted(pred, mask, &weights, bce);
    let first = sl(maps[0]) + sl(maps[1]) + sl(maps[2]);
    let second = sl(maps[4]) + sl(maps[5]) + sl(maps[6]);
    let last = sl(maps[8]) + sl(maps[3]) + sl(maps[7]);
    let total = &first + &second + &last;
    (
        total,
        vec![("pair_t1", first), ("pair_t2", second), ("final", last)],
    )
}

/// SINet-V2's loss: the structure loss summed over its maps.
pub fn summed_structure_loss(maps: &[&Tensor], mask: &Tensor, bce: BceWeighting) -> Loss {
    summed_over_maps(maps, mask, |m, w| structure_loss_weighted(m, mask, w, bce))
}

/// The long-term SLT-Net's loss: the hybrid E-loss summed over its maps.
pub fn summed_hybrid_e_loss(maps: &[&Tensor], mask: &Tensor, bce: BceWeighting) -> Loss {
    summed_over_maps(maps, mask, |m, w| hybrid_e_loss_weighted(m, mask, w, bce))
}

/// `loss(map, edge weights)` summed over `maps` in order, from zero; the mask's edge weights
/// computed once.
fn summed_over_maps(
    maps: &[&Tensor],
    mask: &Tensor,
    loss: impl Fn(&Tensor, &EdgeWeights) -> Tensor,
) -> Loss {
    let weights = EdgeWeights::new(mask);
    let total = maps
        .iter()
        .map(|m| loss(m, &weights))
        .fold(Tensor::zeros([], (Kind::Float, mask.device())), |a, b| {
            a + b
        });
    (total, vec![])
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
