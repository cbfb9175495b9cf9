//! The "structure loss" of the reference (as in F3Net / SINet-V2): BCE plus an edge-weighted
//! IoU, summed over the deep-supervision maps.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// How the BCE term of the structure loss is weighted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BceWeighting {
    /// What the reference computes. It passes `reduce='none'` to
    /// `binary_cross_entropy_with_logits`; `reduce` is PyTorch's legacy boolean flag, so the
    /// call returns the batch mean and the "edge weighting" that follows cancels out.
    #[default]
    Reference,
    /// What the reference meant: per-pixel BCE weighted by the same edge map as the IoU term.
    EdgeWeighted,
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
