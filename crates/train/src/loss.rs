//! The losses the recipes compose: the "structure loss" of the reference (as in F3Net /
//! SINet-V2: BCE plus an edge-weighted IoU) and SLT-Net's hybrid E-loss, summed over a model's
//! deep-supervision maps.

use tch::{Kind, Reduction, Tensor};

use crate::run_config::{BceWeighting, TrainConfig};

/// A loss and its logged parts (name, value).
pub type Loss = (Tensor, Vec<(&'static str, Tensor)>);

/// The choices a run makes about the structure losses' terms (`train.bce`,
/// `train.empty_masks`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossTerms {
    pub bce: BceWeighting,
    /// Whether an image whose mask is empty gets the reference's IoU term. That term of an
    /// empty mask is `1 − 1/(Σp·w + 1)`: near 1 unless every probability is near 0, with a
    /// vanishing gradient until then, so leak-free images add an almost constant loss and
    /// little signal. When false, such an image's IoU term is its false area against a small
    /// leak's, `Σp / (Σp + K)` with `K` = `false_area_scale` of its pixels: 0 for an empty
    /// prediction, 1/2 when it marks as much as a small leak, graded in between (no term at
    /// all when `false_area_scale` is 0: the BCE alone).
    pub iou_on_empty_masks: bool,
    /// `K` above, as a share of an image's pixels (`train.false_area_scale`).
    pub false_area_scale: f64,
    /// A leak-free image's most confident pixels, as a share of its pixels
    /// (`train.false_peak_share`): their mean BCE `−log(1 − p)` is added to its loss, 0 adds
    /// nothing. The false-area term's gradient fades once an image is marked with full
    /// confidence (`K/(Σp + K)²`); this one grows with the confidence (`p` per pixel), on
    /// exactly the pixels that make a frame count as a leak.
    pub false_peak_share: f64,
    /// The peak term's weight (`train.false_peak_weight`).
    pub false_peak_weight: f64,
    /// Whether an image with a mask gets the peak term's counterpart (`train.leak_peak`): the
    /// mean `−log p` of the same share of its pixels, its most confident ones inside its mask,
    /// with the same weight, so that both kinds of frame are trained on the pixels that decide
    /// whether a frame counts as a leak.
    pub leak_peak: bool,
}

impl LossTerms {
    /// The terms a run's `[train]` table chooses for `epoch` (1-based): the false area is
    /// charged from `false_area_from_epoch` on.
    pub fn for_epoch(train: &TrainConfig, epoch: usize) -> Self {
        let charged = epoch >= train.false_area_from_epoch;
        LossTerms {
            bce: train.bce,
            iou_on_empty_masks: train.empty_masks == fgstp_data::EmptyMasks::Reference,
            false_area_scale: if charged { train.false_area_scale } else { 0.0 },
            false_peak_share: if charged { train.false_peak_share } else { 0.0 },
            false_peak_weight: train.false_peak_weight,
            leak_peak: train.leak_peak,
        }
    }
}

impl From<BceWeighting> for LossTerms {
    /// The reference's terms with this BCE weighting.
    fn from(bce: BceWeighting) -> Self {
        LossTerms {
            bce,
            iou_on_empty_masks: true,
            false_area_scale: 0.0,
            false_peak_share: 0.0,
            false_peak_weight: 1.0,
            leak_peak: false,
        }
    }
}

/// FGSTP's and the short-term SLT-Net's loss: the structure loss on their nine maps as the
/// reference sums them — three of each pair's four, then the fused map and both pairs'
/// last —, each sum logged. `maps`: pair (t, t+1) ×4, pair (t, t+2) ×4, fused (`Output::maps`).
pub fn nine_map_structure_loss(maps: &[&Tensor], mask: &Tensor, terms: LossTerms) -> Loss {
    assert_eq!(maps.len(), 9, "FGSTP's loss takes its nine maps");
    let weights = EdgeWeights::new(mask);
    let sl = |pred: &Tensor| structure_loss_weighted(pred, mask, &weights, terms);
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
pub fn summed_structure_loss(maps: &[&Tensor], mask: &Tensor, terms: LossTerms) -> Loss {
    summed_over_maps(maps, mask, |m, w| {
        structure_loss_weighted(m, mask, w, terms)
    })
}

/// The long-term SLT-Net's loss: the hybrid E-loss summed over its maps.
pub fn summed_hybrid_e_loss(maps: &[&Tensor], mask: &Tensor, terms: LossTerms) -> Loss {
    summed_over_maps(maps, mask, |m, w| hybrid_e_loss_weighted(m, mask, w, terms))
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
    /// 1 for each image whose mask has a non-zero pixel, else 0: [B, 1].
    has_mask: Tensor,
}

impl EdgeWeights {
    pub fn new(mask: &Tensor) -> Self {
        let local_mean = mask.avg_pool2d([31, 31], [1, 1], [15, 15], false, true, None::<i64>);
        let weight = (local_mean - mask).abs() * 5.0 + 1.0;
        let sum = per_image(&weight);
        let has_mask = per_image(mask).gt(0.0).to_kind(Kind::Float);
        Self {
            weight,
            sum,
            has_mask,
        }
    }
}

impl EdgeWeights {
    /// The per-image IoU term as `terms` wants it: the reference's, or for the images whose
    /// mask is empty their false area `Σp / (Σp + K)` (`union` is `Σp·w` there, and `w` is 1).
    fn iou_term(&self, wiou: Tensor, union: &Tensor, terms: LossTerms) -> Tensor {
        if terms.iou_on_empty_masks {
            return wiou;
        }
        let with_mask = &wiou * &self.has_mask;
        if terms.false_area_scale <= 0.0 {
            return with_mask;
        }
        let pixels = (self.weight.size()[2] * self.weight.size()[3]) as f64;
        let false_area = union / (union + terms.false_area_scale * pixels);
        with_mask + false_area * (1.0 - &self.has_mask)
    }

    /// Per image `[B, 1]`, weighted, when `terms` ask for it (`iou_on_empty_masks` off and a
    /// `false_peak_share`): for a leak-free image the mean `−log(1 − p)` of its
    /// `false_peak_share` most confident pixels (at least one); for an image with a mask, with
    /// `leak_peak`, the mean `−log p` of as many of its most confident pixels inside the mask,
    /// else 0.
    fn false_peak_term(&self, pred: &Tensor, mask: &Tensor, terms: LossTerms) -> Option<Tensor> {
        if terms.iou_on_empty_masks || terms.false_peak_share <= 0.0 {
            return None;
        }
        let logits = pred.flatten(1, -1);
        let pixels = logits.size()[1];
        let k = ((terms.false_peak_share * pixels as f64).ceil() as i64).clamp(1, pixels);
        let (peak, _) = logits.topk(k, 1, true, false);
        let peak_bce = peak
            .softplus()
            .mean_dim([1i64].as_slice(), true, Kind::Float);
        let mut term = peak_bce * (1.0 - &self.has_mask);
        if terms.leak_peak {
            // The k most confident pixels inside the mask: the others are pushed below every
            // one of them, and those among the k (a mask smaller than k) are left out.
            let inside = mask.flatten(1, -1).gt(0.5).to_kind(Kind::Float);
            let (peak, at) = (&logits + (&inside - 1.0) * 1e4).topk(k, 1, true, false);
            let counted = inside.gather(1, &at, false);
            let missed = (peak.neg().softplus() * &counted).sum_dim_intlist(
                [1i64].as_slice(),
                true,
                Kind::Float,
            ) / counted
                .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
                .clamp_min(1.0);
            term += missed * &self.has_mask;
        }
        Some(term * terms.false_peak_weight)
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
pub fn structure_loss(pred: &Tensor, mask: &Tensor, terms: LossTerms) -> Tensor {
    structure_loss_weighted(pred, mask, &EdgeWeights::new(mask), terms)
}

/// [`structure_loss`] with the mask's edge weights computed beforehand.
pub fn structure_loss_weighted(
    pred: &Tensor,
    mask: &Tensor,
    weights: &EdgeWeights,
    terms: LossTerms,
) -> Tensor {
    // For `Reference` this is mean·Σw/Σw: kept in the reference's order so values match bit
    // for bit, not only up to rounding.
    let wbce = per_image(&(&weights.weight * bce_map(pred, mask, terms.bce))) / &weights.sum;
    let prob = pred.sigmoid();
    let inter = per_image(&(&prob * mask * &weights.weight));
    let union = per_image(&((prob + mask) * &weights.weight));
    let wiou: Tensor = 1.0 - (&inter + 1.0) / (&union - inter + 1.0);
    let wiou = weights.iou_term(wiou, &union, terms);
    match weights.false_peak_term(pred, mask, terms) {
        Some(peak) => (wbce + wiou + peak).mean(Kind::Float),
        None => (wbce + wiou).mean(Kind::Float),
    }
}

/// SLT-Net's long-term "hybrid E-loss" of logits `pred` against a soft mask, both [B,1,H,W]: the
/// structure loss's edge-weighted BCE (with the same `reduce='none'` quirk, see
/// [`BceWeighting`]) and IoU, each with 1e-8 in numerator and denominator, plus an enhanced-
/// alignment term `1 − mean((1 + E)² / 4)` with `E = (2·φp·φg + 1e-8) / (φp² + φg² + 1e-8)` and
/// φ the map minus its per-image mean; averaged over the batch.
pub fn hybrid_e_loss(pred: &Tensor, mask: &Tensor, terms: LossTerms) -> Tensor {
    hybrid_e_loss_weighted(pred, mask, &EdgeWeights::new(mask), terms)
}

/// [`hybrid_e_loss`] with the mask's edge weights computed beforehand.
pub fn hybrid_e_loss_weighted(
    pred: &Tensor,
    mask: &Tensor,
    weights: &EdgeWeights,
    terms: LossTerms,
) -> Tensor {
    let mean_per_image = |t: &Tensor| {
        t.mean_dim([2i64, 3].as_slice(), true, Kind::Float)
            .expand_as(t)
    };
    let wbce = (per_image(&(&weights.weight * bce_map(pred, mask, terms.bce))) + 1e-8)
        / (&weights.sum + 1e-8);

    let prob = pred.sigmoid();
    let phi_pred = &prob - mean_per_image(&prob);
    let phi_mask = mask - mean_per_image(mask);
    let alignment = (&phi_pred * &phi_mask * 2.0 + 1e-8)
        / (&phi_pred * &phi_pred + &phi_mask * &phi_mask + 1e-8);
    let enhanced = (&alignment + 1.0) * (&alignment + 1.0) / 4.0;
    let eloss: Tensor = 1.0 - enhanced.mean_dim([2i64, 3].as_slice(), false, Kind::Float);

    let inter = per_image(&(&prob * mask * &weights.weight));
    let union = per_image(&((&prob + mask) * &weights.weight));
    let wiou: Tensor = 1.0 - (&inter + 1.0 + 1e-8) / (&union - inter + 1.0 + 1e-8);
    let wiou = weights.iou_term(wiou, &union, terms);
    match weights.false_peak_term(pred, mask, terms) {
        Some(peak) => (wbce + eloss + wiou + peak).mean(Kind::Float),
        None => (wbce + eloss + wiou).mean(Kind::Float),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_false_area_is_charged_from_its_epoch_on() {
        let train = TrainConfig {
            empty_masks: fgstp_data::EmptyMasks::LeakFree,
            false_area_scale: 0.02,
            false_area_from_epoch: 3,
            ..TrainConfig::default()
        };
        let scale = |epoch| LossTerms::for_epoch(&train, epoch).false_area_scale;
        assert_eq!(
            (scale(1), scale(2), scale(3), scale(9)),
            (0.0, 0.0, 0.02, 0.02)
        );
        assert!(!LossTerms::for_epoch(&train, 1).iou_on_empty_masks);
        assert!(LossTerms::for_epoch(&TrainConfig::default(), 1).iou_on_empty_masks);
    }

    /// In leak-free mode a leak-free image's IoU term is its false area against 1% of its
    /// pixels, and an image with a mask is scored as before.
    #[test]
    fn a_leak_free_image_is_charged_for_its_false_area() {
        tch::manual_seed(3);
        let pred = Tensor::randn([2, 1, 16, 16], (Kind::Float, tch::Device::Cpu));
        let mask = Tensor::zeros([2, 1, 16, 16], (Kind::Float, tch::Device::Cpu));
        let _ = mask.get(0).narrow(1, 4, 6).narrow(2, 4, 6).fill_(1.0);
        let reference = LossTerms::from(BceWeighting::EdgeWeighted);
        let leak_free = LossTerms {
            iou_on_empty_masks: false,
            false_area_scale: 0.01,
            false_peak_share: 0.0,
            ..reference
        };
        let per = |terms: LossTerms, i: i64| {
            structure_loss(&pred.narrow(0, i, 1), &mask.narrow(0, i, 1), terms).double_value(&[])
        };
        // Image 0 has a mask: the same loss either way.
        assert_eq!(per(reference, 0), per(leak_free, 0));
        // Image 1 is leak-free: BCE plus Σp / (Σp + 0.01·256).
        let (p1, m1) = (pred.narrow(0, 1, 1), mask.narrow(0, 1, 1));
        let bce = p1
            .binary_cross_entropy_with_logits::<Tensor>(&m1, None, None, Reduction::Mean)
            .double_value(&[]);
        let area = p1.sigmoid().sum(Kind::Float).double_value(&[]);
        let expected = bce + area / (area + 2.56);
        assert!(
            (per(leak_free, 1) - expected).abs() < 1e-5,
            "{} vs {expected}",
            per(leak_free, 1)
        );
        // The reference's term: 1 − 1/(Σp + 1).
        let reference_expected = bce + 1.0 - 1.0 / (area + 1.0);
        assert!((per(reference, 1) - reference_expected).abs() < 1e-5);
        // A batch averages its images' losses.
        let both = structure_loss(&pred, &mask, leak_free).double_value(&[]);
        assert!((both - (per(leak_free, 0) + per(leak_free, 1)) / 2.0).abs() < 1e-6);
        // With no scale, the BCE alone.
        let bce_only = LossTerms {
            false_area_scale: 0.0,
            ..leak_free
        };
        assert!((per(bce_only, 1) - bce).abs() < 1e-5);
        // No false area, no charge.
        let quiet = Tensor::full([1, 1, 16, 16], -30.0, (Kind::Float, tch::Device::Cpu));
        assert!(structure_loss(&quiet, &m1, leak_free).double_value(&[]) < 1e-6);
    }

    /// The peak term adds a leak-free image's mean `−log(1 − p)` over its most confident
    /// pixels (here 3 of 256: ⌈1% · 256⌉) times its weight, and nothing to an image with a mask.
    #[test]
    fn a_leak_free_image_is_charged_for_its_most_confident_pixels() {
        tch::manual_seed(5);
        let pred = Tensor::randn([2, 1, 16, 16], (Kind::Float, tch::Device::Cpu));
        let mask = Tensor::zeros([2, 1, 16, 16], (Kind::Float, tch::Device::Cpu));
        let _ = mask.get(0).narrow(1, 2, 5).narrow(2, 3, 5).fill_(1.0);
        let area_only = LossTerms {
            iou_on_empty_masks: false,
            false_area_scale: 0.01,
            ..LossTerms::from(BceWeighting::Reference)
        };
        let with_peak = LossTerms {
            false_peak_share: 0.01,
            false_peak_weight: 0.5,
            ..area_only
        };
        let per = |terms: LossTerms, i: i64| {
            structure_loss(&pred.narrow(0, i, 1), &mask.narrow(0, i, 1), terms).double_value(&[])
        };
        assert_eq!(per(area_only, 0), per(with_peak, 0));
        // With its counterpart, image 0 (25 mask pixels) adds 0.5 × the mean −log p of its
        // three most confident mask pixels.
        let both_sides = LossTerms {
            leak_peak: true,
            ..with_peak
        };
        let inside: Vec<f64> = Vec::<f64>::try_from(
            pred.get(0)
                .get(0)
                .narrow(0, 2, 5)
                .narrow(1, 3, 5)
                .flatten(0, -1),
        )
        .unwrap();
        let mut inside = inside;
        inside.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let missed: f64 = 0.5
            * inside[..3]
                .iter()
                .map(|x| (1.0 + (-x).exp()).ln())
                .sum::<f64>()
            / 3.0;
        let added = per(both_sides, 0) - per(area_only, 0);
        assert!((added - missed).abs() < 1e-5, "{added} vs {missed}");
        assert_eq!(per(both_sides, 1), per(with_peak, 1));
        let mut logits: Vec<f64> = Vec::<f64>::try_from(pred.get(1).flatten(0, -1)).unwrap();
        logits.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let expected: f64 = 0.5
            * logits[..3]
                .iter()
                .map(|x| (1.0 + x.exp()).ln())
                .sum::<f64>()
            / 3.0;
        let added = per(with_peak, 1) - per(area_only, 1);
        assert!((added - expected).abs() < 1e-5, "{added} vs {expected}");
        // A confident false pixel costs more than a hesitant one: the gradient grows with p.
        let quiet = Tensor::full([1, 1, 16, 16], -30.0, (Kind::Float, tch::Device::Cpu));
        let one_hot = |logit: f64| {
            let p = quiet.copy();
            let _ = p.get(0).get(0).get(7).get(7).fill_(logit);
            let p = p.set_requires_grad(true);
            structure_loss(&p, &mask.narrow(0, 1, 1), with_peak).backward();
            p.grad().get(0).get(0).get(7).get(7).double_value(&[])
        };
        assert!(one_hot(6.0) > one_hot(0.0) && one_hot(0.0) > 0.0);
        // Not charged before its epoch.
        let train = TrainConfig {
            empty_masks: fgstp_data::EmptyMasks::LeakFree,
            false_peak_share: 0.005,
            false_area_from_epoch: 4,
            ..TrainConfig::default()
        };
        assert_eq!(LossTerms::for_epoch(&train, 3).false_peak_share, 0.0);
        assert_eq!(LossTerms::for_epoch(&train, 4).false_peak_share, 0.005);
    }
}
