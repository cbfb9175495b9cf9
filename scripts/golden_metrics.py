"""Golden metric values for fgstp-metrics' parity tests, computed by PySODMetrics 1.6.2.

    scripts/pytools scripts/golden_metrics.py                  # golden.json from the committed PNGs
    scripts/pytools scripts/golden_metrics.py --make-fixtures  # (re)draw the PNGs first (seeded)
    scripts/pytools scripts/golden_metrics.py --fgstp-repo DIR # also cross-check the aggregation
                                                               # with DIR/utils/recorder/metrics.py

Fixtures: crates/metrics/tests/fixtures/{pred,gt}/<video>/<frame>.png (8-bit grey). Output:
crates/metrics/tests/fixtures/golden.json with, per frame, every key fgstp reports, and the
aggregates (overall, per_video, video_mean) computed the way the FGSTP reference's grouped
recorder aggregates PySODMetrics results.

S-measure: where PySODMetrics returns NaN (a foreground centroid in the last row or column
leaves two quadrants empty; their weight is 0 but the mean of an empty slice is NaN), the
golden `sm` is PySODMetrics' own computation with those empty quadrants skipped, and
`sm_reference_is_nan` is true. Everything else is PySODMetrics' output unchanged.
"""

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as sod

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "crates/metrics/tests/fixtures"
KEYS = ["sm", "wfm", "mae", "em_adp", "em_mean", "em_max", "fm_adp", "fm_mean", "fm_max",
        "iou_adp", "iou_mean", "iou_max", "dice_adp", "dice_mean", "dice_max",
        "jaccard", "f1", "jf"]


class SmeasureSkippingEmptyQuadrants(sod.Smeasure):
    """PySODMetrics' Smeasure, except that a quadrant without pixels scores 0 (its weight is 0)."""

    def ssim(self, pred, gt):
        if pred.size == 0:
            return 0.0
        return super().ssim(pred, gt)


def new_metrics():
    fm2 = sod.FmeasureV2(metric_handlers={
        "fm": sod.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3),
        "iou": sod.IOUHandler(with_dynamic=True, with_adaptive=True),
        "dice": sod.DICEHandler(with_dynamic=True, with_adaptive=True),
    })
    return {"sm": sod.Smeasure(), "sm_safe": SmeasureSkippingEmptyQuadrants(),
            "wfm": sod.WeightedFmeasure(), "mae": sod.MAE(), "em": sod.Emeasure(), "fm2": fm2}


def step(metrics, pred, gt):
    for m in metrics.values():
        m.step(pred, gt)


def results(metrics):
    """Scalars and 256-point curves of one group of frames, as PySODMetrics returns them."""
    em = metrics["em"].get_results()["em"]
    fm2 = metrics["fm2"].get_results()
    sm = float(metrics["sm"].get_results()["sm"])
    sm_safe = float(metrics["sm_safe"].get_results()["sm"])
    if not math.isnan(sm):
        assert sm == sm_safe, (sm, sm_safe)
    scalars = {
        "sm": sm_safe,
        "wfm": float(metrics["wfm"].get_results()["wfm"]),
        "mae": float(metrics["mae"].get_results()["mae"]),
        "em_adp": float(em["adp"]),
        "fm_adp": float(fm2["fm"]["adaptive"]),
        "iou_adp": float(fm2["iou"]["adaptive"]),
        "dice_adp": float(fm2["dice"]["adaptive"]),
    }
    curves = {"em": em["curve"], "fm": fm2["fm"]["dynamic"], "iou": fm2["iou"]["dynamic"],
              "dice": fm2["dice"]["dynamic"]}
    return scalars, curves, math.isnan(sm)


def summarise(scalars, curves, jaccard, f1):
    out = dict(scalars)
    for name, curve in curves.items():
        out[f"{name}_mean"] = float(np.mean(curve))
        out[f"{name}_max"] = float(np.max(curve))
    out["jaccard"], out["f1"] = jaccard, f1
    out["jf"] = None if jaccard is None else (f1 + jaccard) / 2
    return {k: out[k] for k in KEYS}


def protocol(pred, gt):
    """The FGSTP reference test.py's Jaccard and F1 of one frame (None for an empty mask), on
    the 8-bit prediction divided by 255 (float64) and the mask as its loader gives it."""
    res = pred / 255
    res = (res - res.min()) / (res.max() - res.min() + 1e-8)
    prediction = np.where(res > 0.5, 1, 0).astype(bool)
    gt_m = np.asarray(gt, np.float32) / np.float32(255)  # torchvision ToTensor on an 8-bit mask
    gt_m /= (gt_m.max() + 1e-8)
    groundtruth = np.where(gt_m > 0.5, 1, 0).astype(bool)
    if groundtruth.sum() == 0:
        return None
    intersection = np.logical_and(prediction, groundtruth).sum()
    union = np.logical_or(prediction, groundtruth).sum()
    recall = intersection / (groundtruth.sum() + 1e-8)
    precision = intersection / (prediction.sum() + 1e-8)
    return float(intersection / union), float((2 * recall * precision) / (recall + precision + 1e-8))


def mean_or_none(values):
    return None if not values else float(np.mean(values))


def frames():
    for gt_path in sorted((FIXTURES / "gt").glob("*/*.png")):
        video = gt_path.parent.name
        pred_path = FIXTURES / "pred" / video / gt_path.name
        pred = cv2.imread(str(pred_path), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        assert pred is not None and gt is not None, gt_path
        yield video, gt_path.stem, pred, gt


def golden(fgstp_repo):
    per_frame, groups, jf_by_video = [], {}, {}
    overall = new_metrics()
    for video, frame, pred, gt in frames():
        single = new_metrics()
        step(single, pred, gt)
        scalars, curves, sm_nan = results(single)
        jf = protocol(pred, gt)
        jaccard, f1 = (None, None) if jf is None else jf
        row = {"video": video, "frame": frame, "width": pred.shape[1], "height": pred.shape[0],
               "sm_reference_is_nan": sm_nan}
        row.update(summarise(scalars, curves, jaccard, f1))
        per_frame.append(row)
        step(groups.setdefault(video, new_metrics()), pred, gt)
        step(overall, pred, gt)
        jf_by_video.setdefault(video, []).append(jf)

    def jf_means(jfs):
        scored = [x for x in jfs if x is not None]
        return mean_or_none([j for j, _ in scored]), mean_or_none([f for _, f in scored])

    all_jf = [x for v in jf_by_video.values() for x in v]
    scalars, curves, _ = results(overall)
    report = {"overall": summarise(scalars, curves, *jf_means(all_jf)), "per_video": {}}
    video_scalars, video_curves = [], []
    for video, metrics in groups.items():
        scalars, curves, _ = results(metrics)
        report["per_video"][video] = summarise(scalars, curves, *jf_means(jf_by_video[video]))
        video_scalars.append(scalars)
        video_curves.append(curves)
    # Over videos: scalars averaged; curves averaged threshold by threshold, then mean and max.
    mean_scalars = {k: float(np.mean([s[k] for s in video_scalars])) for k in video_scalars[0]}
    mean_curves = {k: np.mean(np.vstack([c[k] for c in video_curves]), axis=0) for k in video_curves[0]}
    per_video = report["per_video"].values()
    j = mean_or_none([v["jaccard"] for v in per_video if v["jaccard"] is not None])
    f = mean_or_none([v["f1"] for v in per_video if v["f1"] is not None])
    report["video_mean"] = summarise(mean_scalars, mean_curves, j, f)
    report["frames"] = len(per_frame)
    report["videos"] = len(groups)

    if fgstp_repo:
        cross_check(Path(fgstp_repo), report)
    return {"generator": "scripts/golden_metrics.py", "pysodmetrics": sod_version(),
            "numpy": np.__version__, "frames": per_frame, "report": report}


def cross_check(fgstp_repo, report):
    """Run the FGSTP reference's own GroupedMetricRecorder on the fixtures and compare."""
    spec = importlib.util.spec_from_file_location("fgstp_recorder", fgstp_repo / "utils/recorder/metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = ("sm", "wfm", "mae", "em", "fmeasure", "iou", "dice")
    recorder = module.GroupedMetricRecorder(metric_names=names)
    for video, _, pred, gt in frames():
        recorder.step(video, pred, gt)
    numerical = recorder.show(num_bits=16)
    ours = report["video_mean"]
    pairs = {"sm": "sm", "wfm": "wfm", "mae": "mae", "adpem": "em_adp", "avgem": "em_mean",
             "maxem": "em_max", "adpfmeasure": "fm_adp", "avgfmeasure": "fm_mean",
             "maxfmeasure": "fm_max", "adpiou": "iou_adp", "avgiou": "iou_mean", "maxiou": "iou_max",
             "avgdice": "dice_mean", "maxdice": "dice_max"}
    for theirs, key in pairs.items():
        value = numerical[theirs]
        if math.isnan(value):
            print(f"cross-check: reference recorder {theirs} is NaN (empty S-measure quadrant), "
                  f"ours {ours[key]:.12f}", file=sys.stderr)
            continue
        assert abs(value - ours[key]) < 1e-12, (theirs, value, ours[key])
    print(f"cross-check with {fgstp_repo}/utils/recorder/metrics.py: video_mean agrees", file=sys.stderr)


def sod_version():
    from importlib.metadata import version
    return version("pysodmetrics")


# ---------------------------------------------------------------------------- fixture drawing

def blob_mask(rng, h, w, count, max_radius):
    mask = np.zeros((h, w), np.uint8)
    for _ in range(count):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, max_radius + 1)), int(rng.integers(1, max_radius + 1)))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return mask


def soft_prediction(rng, mask, shift=2, noise=25.0, blur=5):
    h, w = mask.shape
    dy, dx = rng.integers(-shift, shift + 1, 2)
    moved = np.roll(np.roll(mask.astype(np.float64), dy, 0), dx, 1)
    soft = cv2.GaussianBlur(moved, (blur, blur), 0) * rng.uniform(0.6, 1.0)
    soft += rng.normal(0, noise, (h, w)) + rng.uniform(0, 30)
    return np.clip(soft, 0, 255).astype(np.uint8)


def edge_cases(rng):
    h, w = 30, 40
    blob = blob_mask(rng, h, w, 1, 9)
    random = rng.integers(0, 256, (h, w)).astype(np.uint8)
    zeros = np.zeros((h, w), np.uint8)
    yield "01_empty_mask_random_pred", random, zeros
    yield "02_empty_mask_zero_pred", zeros, zeros
    yield "03_full_mask_random_pred", random, np.full((h, w), 255, np.uint8)
    yield "04_full_mask_white_pred", np.full((h, w), 255, np.uint8), np.full((h, w), 255, np.uint8)
    yield "05_black_pred", zeros, blob
    yield "06_white_pred", np.full((h, w), 255, np.uint8), blob
    yield "07_grey_pred", np.full((h, w), 128, np.uint8), blob
    half = np.zeros((h, w), np.uint8)
    half[:, : w // 2] = 255  # mean exactly 0.5: the adaptive threshold is exactly 1
    yield "08_binary_pred_half_on", half, blob
    last_row = np.zeros((h, w), np.uint8)
    last_row[h - 1, 5:12] = 255
    yield "09_centroid_in_last_row", soft_prediction(rng, last_row), last_row
    last_col = np.zeros((h, w), np.uint8)
    last_col[3:9, w - 1] = 255
    yield "10_centroid_in_last_column", soft_prediction(rng, last_col), last_col
    dot = np.zeros((h, w), np.uint8)
    dot[17, 23] = 255
    yield "11_single_pixel_object", soft_prediction(rng, dot, shift=1, noise=10), dot
    levels = blob.copy()
    levels[levels == 0] = 128  # 128 is background for PySODMetrics (> 128), foreground for test.py
    levels[: h // 3][blob[: h // 3] > 0] = 129
    yield "12_mask_levels_128_129", soft_prediction(rng, blob), levels
    yield "13_mask_zero_one", soft_prediction(rng, blob), (blob > 0).astype(np.uint8)
    # Two blobs, top-left and bottom-right: the S-measure's top-right and bottom-left
    # quadrants hold no foreground. For a constant prediction there, numpy's mean of the
    # quadrant may differ from the constant in the last bit, which decides the SSIM branch.
    two_blobs = np.zeros((48, 64), np.uint8)
    two_blobs[5:10, 5:10] = 255
    two_blobs[40:45, 50:55] = 255
    cy, cx = (np.argwhere(two_blobs > 128).mean(axis=0).round() + 1).astype(int)
    yield "07b_light_grey_pred_two_blobs", np.full((48, 64), 200, np.uint8), two_blobs
    yield "07c_grey_pred_two_blobs", np.full((48, 64), 128, np.uint8), two_blobs
    flat = soft_prediction(rng, two_blobs)
    flat[0, 0], flat[-1, -1] = 0, 255  # fixes the min-max normalisation
    for level in range(1, 255):
        value = (level / 255 - 0) / (255 / 255 - 0)
        if np.full((48, 64), value)[0:cy, cx:].mean() != value:
            break
    flat[0:cy, cx:] = level  # a constant, non-zero, empty-mask quadrant
    yield "14_flat_quadrant_pred", flat, two_blobs
    row_mask = np.zeros((1, 37), np.uint8)
    row_mask[0, 10:20] = 255
    yield "15_single_row", rng.integers(0, 256, (1, 37)).astype(np.uint8), row_mask
    col_mask = np.zeros((33, 1), np.uint8)
    col_mask[4:9, 0] = 255
    yield "16_single_column", rng.integers(0, 256, (33, 1)).astype(np.uint8), col_mask
    two = np.zeros((h, w), np.uint8)
    two[rng.random((h, w)) < 0.3] = 200
    yield "17_two_level_pred", two, blob
    yield "18_narrow_range_pred", (100 + (random // 64)).astype(np.uint8), blob


def videos(rng):
    specs = [("blobs_a", 5, 48, 64, 2, 10), ("blobs_b", 4, 37, 53, 3, 6), ("blobs_c", 4, 64, 45, 4, 3)]
    for video, count, h, w, blobs, radius in specs:
        for k in range(count):
            if video == "blobs_c" and k == 1:
                mask = np.zeros((h, w), np.uint8)  # an empty mask inside a video
            else:
                mask = blob_mask(rng, h, w, blobs, radius)
            yield video, f"{k:05d}", soft_prediction(rng, mask), mask


def make_fixtures():
    rng = np.random.default_rng(20250501)
    for d in ("pred", "gt"):
        for old in (FIXTURES / d).glob("*/*.png"):
            old.unlink()
    items = [("edge_cases", name, p, g) for name, p, g in edge_cases(rng)] + list(videos(rng))
    for video, frame, pred, gt in items:
        for d, img in (("pred", pred), ("gt", gt)):
            path = FIXTURES / d / video / f"{frame}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), img), path
    print(f"wrote {len(items)} prediction/mask pairs under {FIXTURES}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-fixtures", action="store_true", help="redraw the fixture PNGs first")
    parser.add_argument("--fgstp-repo", help="a checkout of GeekEagle/FGSTP: cross-check the aggregation "
                        "with its utils/recorder/metrics.py")
    args = parser.parse_args()
    if args.make_fixtures:
        make_fixtures()
    out = golden(args.fgstp_repo)
    path = FIXTURES / "golden.json"
    path.write_text(json.dumps(out, indent=1, allow_nan=False) + "\n")
    print(f"wrote {path} ({len(out['frames'])} frames)", file=sys.stderr)


if __name__ == "__main__":
    main()
