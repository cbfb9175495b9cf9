"""Runs the authors' PyTorch ZoomNeXt (lartpang/ZoomNeXt) to produce parity data for fgstp-model.

Usage (from the repo root):
    scripts/pytools scripts/make_zoomnext_fixture.py REF_CHECKOUT OUT_DIR \
        [--size 64x96] [--seed 2024] [--threads N] [--no-b5-keys]

REF_CHECKOUT is your own checkout of https://github.com/lartpang/ZoomNeXt (nothing of it is copied
here). Its modules are imported from there; this script changes, in memory only:
  * `torch.cuda.get_device_properties`, which the PVTv2 attention calls at construction to pick a
    CUDA attention kernel: it answers "not an A100", so the model builds on a machine without a GPU
    (the choice only affects CUDA kernels; on the CPU the same `scaled_dot_product_attention` runs).

The model is the authors' `PvtV2B2_ZoomNeXt` class with a smaller encoder, so that the fixture stays
small while every operation of the network runs:
  * encoder: the reference's own `PyramidVisionTransformerV2` with PVTv2-b0's hyper-parameters
    (widths 32/64/160/256, heads 1/2/5/8, MLP ratios 8/8/4/4, qkv bias, LayerNorm eps 1e-6, SR ratios
    8/4/2/1) but one block per stage instead of two (block stacking is a plain loop);
  * `hmu_groups=3` (a constructor argument; the default is 6): the RGPU still has a first, a middle
    and a last group; `mid_dim` stays 64 (the class hard-codes 64 in `tra_1` and the predictor) and
    `siu_groups` stays 4.

Writes into OUT_DIR:
  zoomnext_image.pth       torch.save(model.state_dict()) of the image model (num_frames=1), float16
                           storage (every value is float16-exact; the forward ran in float32). It
                           carries the image model's unused temporal-branch tensors, as the authors'
                           image checkpoints do.
  zoomnext_video_temporal.pth
                           the video model (num_frames=5) is built and filled from zoomnext_image.pth
                           by the authors' own loader (`utils.io.load_weight(strict=True,
                           skip_unmatched_shape=True)`, as main_for_video.py fine-tunes), which
                           leaves its temporal branch at its initial value; that branch is then
                           randomised and its tensors (the only ones that differ from the image
                           checkpoint) saved here, again as torch.save of a state dict, float16
  zoomnext_io.safetensors
      frames.u8            [2, 5, H0, W0, 3] uint8 RGB frames: 2 clips of 5 frames (original size)
      image_s/m/l.u8       [10, h, w, 3] uint8: the reference's `utils.ops.ms_resize` of each frame to
                           0.5x, 1x, 1.5x of the base size (cv2.INTER_LINEAR on uint8)
      image.logits         [10, 1, h, w]: the image model on the 10 frames (eval, no_grad)
      video.logits         [10, 1, h, w]: the video model on the 2 clips flattened to (clip, frame)
      resize.<i>.src / resize.<i>.dst
                           more cv2.resize(INTER_LINEAR) cases on uint8 (up/down, exact halves, one
                           axis only, 1- and 3-channel, same size) for the bit-exact resize test
  zoomnext_keys_<image|video>_<b0d1|b5>.txt
                           every state-dict key with its shape, for the small model and the
                           authors' PvtV2B5_ZoomNeXt (b5 unless --no-b5-keys)
  zoomnext_meta.json       sizes, seeds, output statistics, versions, torch.utils.flop_counter's
                           FLOPs of the reference forward, and the temporal branch's effect: the
                           largest change of a probability between the video model with its temporal
                           branch as the authors initialise it (the identity; then it equals the image
                           model exactly) and as randomised here

The base size is given as HxW (default 64x96: the 0.5x scale is 32x48, whose 1/32 map is 1x2).

With --full-size DIR, it writes instead (into DIR; hundreds of MB, not for the repository) the
full-size check: the authors' PvtV2B5_ZoomNeXt and videoPvtV2B5_ZoomNeXt at their train/test size
(384x384), randomised the same way, one frame and one 5-frame clip:
  zoomnext_b5_image.pth, zoomnext_b5_video.pth   torch.save(model.state_dict()), float16 storage
  zoomnext_b5_io.safetensors                     the uint8 scales and both models' logits
  zoomnext_b5_meta.json                          reference forward times (--threads) and statistics
crates/model/tests/integration/zoomnext.rs's ignored test `full_size_b5_matches_the_reference` reads DIR from
ZOOMNEXT_FULL_SIZE_DIR.
"""

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import types
import warnings
from functools import partial

import numpy as np
import torch

FRAMES_PER_CLIP = 5
CLIPS = 2
ORIGINAL_HW = (75, 101)  # odd, not a multiple of anything: every scale is a non-integer resize


def import_reference(ref_dir):
    sys.path.insert(0, os.path.abspath(ref_dir))
    warnings.filterwarnings("ignore")  # timm's deprecated import paths, torch's sdp_kernel
    # The attention asks the GPU which kernel to use when it is built; answer for a machine without one.
    torch.cuda.get_device_properties = lambda *args, **kwargs: types.SimpleNamespace(major=0, minor=0)
    import methods.backbone.pvt_v2_eff as pvt
    import methods.zoomnext.zoomnext as zoomnext
    import utils.io as ref_io
    import utils.ops as ref_ops

    return pvt, zoomnext, ref_io, ref_ops


def small_model_class(pvt, zoomnext):
    class PvtV2B0OneBlock_ZoomNeXt(zoomnext.PvtV2B2_ZoomNeXt):
        """The authors' PVTv2 ZoomNeXt with b0's encoder hyper-parameters and one block per stage."""

        def set_backbone(self, pretrained, use_checkpoint):
            self.encoder = pvt.PyramidVisionTransformerV2(
                patch_size=4,
                embed_dims=[32, 64, 160, 256],
                num_heads=[1, 2, 5, 8],
                mlp_ratios=[8, 8, 4, 4],
                qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                depths=[1, 1, 1, 1],
                sr_ratios=[8, 4, 2, 1],
                use_checkpoint=use_checkpoint,
            )

    return PvtV2B0OneBlock_ZoomNeXt


def half_exact_(tensor):
    tensor.copy_(tensor.half().float())


@torch.no_grad()
def randomise(model, gen):
    """Moves every tensor away from its structured initial value (ones, zeros, ImageNet mean/std)."""
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name == "normalizer.mean":
            t.copy_(torch.rand(t.shape, generator=gen) * 0.2 + 0.35)
        elif name == "normalizer.std":
            t.copy_(torch.rand(t.shape, generator=gen) * 0.1 + 0.2)
        elif name.endswith("running_mean"):
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
        elif name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        elif "temperal_proj" in name:
            pass  # see randomise_temporal
        elif name.endswith(".bias"):
            t.copy_(torch.randn(t.shape, generator=gen) * 0.05)
        elif t.dim() == 1:  # LayerNorm / BatchNorm scale
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        # other weights keep the reference's own (random) initialisation
        half_exact_(t)


@torch.no_grad()
def randomise_temporal(model, gen, scale):
    """The temporal branch: its last conv starts at zero (identity); give all three tensors weight."""
    for name, t in model.state_dict().items():
        if "temperal_proj" in name:
            t.copy_(torch.randn(t.shape, generator=gen) * scale / np.sqrt(t[0].numel()))
            half_exact_(t)


def temporal_keys(model):
    return [k for k in model.state_dict() if "temperal_proj" in k]


def make_frames(rng, count, hw):
    """Smooth colour fields plus noise, uint8 RGB [count, H, W, 3]."""
    h, w = hw
    coarse = rng.uniform(0, 255, size=(count, 4, 5, 3))
    ys = np.linspace(0, 3, h)[:, None]
    xs = np.linspace(0, 4, w)[None, :]
    y0, x0 = np.floor(ys).astype(int).clip(0, 2), np.floor(xs).astype(int).clip(0, 3)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    out = []
    for c in coarse:
        top = c[y0, x0] * (1 - fx) + c[y0, x0 + 1] * fx
        bottom = c[y0 + 1, x0] * (1 - fx) + c[y0 + 1, x0 + 1] * fx
        out.append(top * (1 - fy) + bottom * fy)
    frames = np.stack(out) + rng.normal(0, 25, size=(count, h, w, 3))
    return frames.clip(0, 255).astype(np.uint8)


def resize_cases(rng, cv2):
    """(src, dst) pairs of cv2.resize(INTER_LINEAR) on uint8: the paths OpenCV takes for 8-bit."""
    cases = []
    shapes = [
        ((37, 53, 3), (18, 26)),  # non-integer downscale
        ((37, 53, 3), (55, 79)),  # non-integer upscale (int(37 * 1.5), int(53 * 1.5))
        ((40, 64, 3), (20, 32)),  # exact halves: OpenCV switches to its fast INTER_AREA path
        ((40, 64, 3), (20, 64)),  # halves in one axis only: plain bilinear
        ((40, 64, 3), (10, 16)),  # exact quarters: plain bilinear (only 2x takes the area path)
        ((41, 64, 3), (20, 32)),  # nearly halves
        ((37, 53, 1), (55, 26)),  # one channel, up in one axis and down in the other
        ((7, 5, 3), (3, 11)),
        ((1, 9, 3), (4, 2)),  # one row
        ((6, 6, 3), (6, 6)),  # same size: a copy
        ((30, 40, 3), (60, 80)),  # exact doubling
        ((75, 101, 3), (113, 151)),
    ]
    for (src_shape, (dh, dw)) in shapes:
        src = rng.integers(0, 256, size=src_shape, dtype=np.uint8)
        dst = cv2.resize(src, dsize=(dw, dh), interpolation=cv2.INTER_LINEAR)
        if dst.ndim == 2:
            dst = dst[..., None]
        cases.append((src, dst))
    return cases


def write_keys(path, model):
    with open(path, "w") as f:
        for name, t in model.state_dict().items():
            f.write(f"{name} {list(t.shape)}\n")


def flops(model, data):
    """torch.utils.flop_counter's count of one eval forward, on the meta device (shapes only). There
    the attention's scaled_dot_product_attention decomposes into matrix products, which the counter
    counts; on CPU tensors it runs a fused CPU kernel the counter does not know and counts 0."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).to("meta").eval()
    data = {k: v.to("meta") for k, v in data.items()}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(data=data)
    return counter.get_total_flops()


def stats(t):
    t = t.double()
    return {"min": t.min().item(), "max": t.max().item(), "mean": t.mean().item(), "std": t.std().item()}


def full_size_check(args, pvt, zoomnext, ref_io, ref_ops, out_dir):
    """b5 at 384: one frame through the image model, one 5-frame clip through the video model."""
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 2)
    frames = make_frames(rng, FRAMES_PER_CLIP, (480, 640))
    scales = [ref_ops.ms_resize(f, scales=(0.5, 1.0, 1.5), base_h=384, base_w=384) for f in frames]
    pyramid_u8 = {name: np.stack([s[i] for s in scales]) for i, name in enumerate(("image_s", "image_m", "image_l"))}
    clip = {name: torch.from_numpy(a).div(255).permute(0, 3, 1, 2) for name, a in pyramid_u8.items()}
    one = {name: t[:1] for name, t in clip.items()}
    os.makedirs(out_dir, exist_ok=True)
    io = {f"{name}.u8": torch.from_numpy(a) for name, a in pyramid_u8.items()}
    meta = {"threads": torch.get_num_threads(), "forward_seconds": {}}
    for kind, model, data in [
        ("image", zoomnext.PvtV2B5_ZoomNeXt(pretrained=False, num_frames=1), one),
        ("video", zoomnext.videoPvtV2B5_ZoomNeXt(pretrained=False, num_frames=FRAMES_PER_CLIP), clip),
    ]:
        model.eval()
        randomise(model, gen)
        randomise_temporal(model, gen, args.temporal_scale)
        with torch.no_grad():
            raw = model(data=data)
            head = model.predictor[2]
            factor = args.logit_std / raw.std().item()
            head.weight.mul_(factor)
            head.bias.mul_(factor).sub_(raw.mean().item() * factor)
            half_exact_(head.weight)
            half_exact_(head.bias)
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                logits = model(data=data)
                times.append(time.perf_counter() - t0)
        meta["forward_seconds"][kind] = min(times)
        meta[f"{kind}_logits"] = stats(logits)
        io[f"{kind}.logits"] = logits.contiguous()
        torch.save(model.half().state_dict(), os.path.join(out_dir, f"zoomnext_b5_{kind}.pth"))
        print(kind, meta["forward_seconds"][kind], file=sys.stderr)
    from safetensors.torch import save_file

    save_file(io, os.path.join(out_dir, "zoomnext_b5_io.safetensors"))
    with open(os.path.join(out_dir, "zoomnext_b5_meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref_checkout")
    ap.add_argument("out_dir")
    ap.add_argument("--size", default="64x96", help="base size HxW (the 1x scale)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--logit-std", type=float, default=3.0,
                    help="scale the predictor's last conv so the image logits have this std")
    ap.add_argument("--temporal-scale", type=float, default=1.0,
                    help="std of the temporal branch's weights times sqrt(fan-in)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--b5-keys", action=argparse.BooleanOptionalAction, default=True,
                    help="also write the key lists of the authors' PvtV2B5_ZoomNeXt")
    ap.add_argument("--full-size", metavar="DIR",
                    help="write the b5 at 384x384 check into DIR instead of the fixture (see above)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base_h, base_w = (int(v) for v in args.size.lower().split("x"))

    pvt, zoomnext, ref_io, ref_ops = import_reference(args.ref_checkout)
    if args.full_size:
        full_size_check(args, pvt, zoomnext, ref_io, ref_ops, args.full_size)
        return
    import cv2

    Small = small_model_class(pvt, zoomnext)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 2)

    image_model = Small(pretrained=False, num_frames=1, hmu_groups=3).eval()
    randomise(image_model, gen)

    # Inputs exactly as the reference's VideoTestDataset builds them: uint8 RGB frames, resized by its
    # own ms_resize (cv2.INTER_LINEAR on uint8) to 0.5x, 1x, 1.5x of the base size, then / 255.
    count = CLIPS * FRAMES_PER_CLIP
    frames = make_frames(rng, count, ORIGINAL_HW)
    scales = [ref_ops.ms_resize(f, scales=(0.5, 1.0, 1.5), base_h=base_h, base_w=base_w) for f in frames]
    pyramid_u8 = {name: np.stack([s[i] for s in scales]) for i, name in enumerate(("image_s", "image_m", "image_l"))}
    data = {name: torch.from_numpy(a).div(255).permute(0, 3, 1, 2) for name, a in pyramid_u8.items()}

    # Spread the predictions: scale the predictor's last conv so the logits have std ~ logit_std and
    # shift its bias so they centre on 0 (probabilities away from the sigmoid's flat tails).
    with torch.no_grad():
        raw = image_model(data=data)
        head = image_model.predictor[2]
        factor = args.logit_std / raw.std().item()
        head.weight.mul_(factor)
        head.bias.mul_(factor).sub_(raw.mean().item() * factor)
        half_exact_(head.weight)
        half_exact_(head.bias)
        t0 = time.perf_counter()
        image_logits = image_model(data=data)
        image_seconds = time.perf_counter() - t0

    os.makedirs(args.out_dir, exist_ok=True)
    image_pth = os.path.join(args.out_dir, "zoomnext_image.pth")
    torch.save(image_model.half().state_dict(), image_pth)  # lossless: values are float16-exact
    image_model.float()

    # The video model, filled from the image checkpoint by the authors' own loader.
    video_model = Small(pretrained=False, num_frames=FRAMES_PER_CLIP, hmu_groups=3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_io.load_weight(model=video_model, load_path=image_pth, strict=True, skip_unmatched_shape=True)
    video_model.float()
    with torch.no_grad():
        no_temporal_logits = video_model(data=data)  # the temporal branch starts as the identity
        randomise_temporal(video_model, gen, args.temporal_scale)
        t0 = time.perf_counter()
        video_logits = video_model(data=data)
        video_seconds = time.perf_counter() - t0
    keys = temporal_keys(video_model)
    sd = video_model.state_dict()
    torch.save({k: sd[k].half() for k in keys}, os.path.join(args.out_dir, "zoomnext_video_temporal.pth"))

    from safetensors.torch import save_file

    io = {"frames.u8": torch.from_numpy(frames).reshape(CLIPS, FRAMES_PER_CLIP, *frames.shape[1:])}
    io.update({f"{name}.u8": torch.from_numpy(a) for name, a in pyramid_u8.items()})
    io["image.logits"] = image_logits.contiguous()
    io["video.logits"] = video_logits.contiguous()
    for i, (src, dst) in enumerate(resize_cases(rng, cv2)):
        io[f"resize.{i}.src"] = torch.from_numpy(np.ascontiguousarray(src))
        io[f"resize.{i}.dst"] = torch.from_numpy(np.ascontiguousarray(dst))
    save_file(io, os.path.join(args.out_dir, "zoomnext_io.safetensors"))

    write_keys(os.path.join(args.out_dir, "zoomnext_keys_image_b0d1.txt"), image_model)
    write_keys(os.path.join(args.out_dir, "zoomnext_keys_video_b0d1.txt"), video_model)

    prob = lambda t: t.sigmoid()
    meta = {
        "reference": "lartpang/ZoomNeXt, methods/zoomnext/zoomnext.py PvtV2B2_ZoomNeXt with a b0-width, "
                     "one-block-per-stage PyramidVisionTransformerV2, hmu_groups=3",
        "base_size": [base_h, base_w],
        "original_size": list(ORIGINAL_HW),
        "clips": CLIPS,
        "frames_per_clip": FRAMES_PER_CLIP,
        "seed": args.seed,
        "versions": {"torch": torch.__version__, "cv2": cv2.__version__, "numpy": np.__version__},
        "parameters": {
            "image": sum(p.numel() for p in image_model.parameters()),
            "video": sum(p.numel() for p in video_model.parameters()),
        },
        "image_logits": stats(image_logits),
        "video_logits": stats(video_logits),
        "temporal_effect_max_abs_prob": (prob(video_logits) - prob(no_temporal_logits)).abs().max().item(),
        "temporal_effect_max_abs_logit": (video_logits - no_temporal_logits).abs().max().item(),
        "no_temporal_vs_image_max_abs_logit": (no_temporal_logits - image_logits).abs().max().item(),
        "forward_seconds": {"image": image_seconds, "video": video_seconds},
        # torch.utils.flop_counter on the meta device: matrix products and convolutions only,
        # FLOPs = 2 x MACs.
        "flop_counter": {
            "image_batch10": flops(image_model, data),
            "video_2x5": flops(video_model, data),
        },
    }
    if args.b5_keys:
        b5_image = zoomnext.PvtV2B5_ZoomNeXt(pretrained=False, num_frames=1)
        write_keys(os.path.join(args.out_dir, "zoomnext_keys_image_b5.txt"), b5_image)
        b5_video = zoomnext.videoPvtV2B5_ZoomNeXt(pretrained=False, num_frames=FRAMES_PER_CLIP)
        write_keys(os.path.join(args.out_dir, "zoomnext_keys_video_b5.txt"), b5_video)
        meta["parameters"]["b5_image"] = sum(p.numel() for p in b5_image.parameters())
        meta["parameters"]["b5_video"] = sum(p.numel() for p in b5_video.parameters())
        # One 384x384 sample (the authors' train/test size) at each scale.
        one = {f"image_{k}": torch.empty(1, 3, int(384 * s), int(384 * s), device="meta")
               for k, s in (("s", 0.5), ("m", 1.0), ("l", 1.5))}
        clip = {k: torch.empty(FRAMES_PER_CLIP, *v.shape[1:], device="meta") for k, v in one.items()}
        meta["flop_counter"]["b5_image_384"] = flops(b5_image, one)
        meta["flop_counter"]["b5_video_clip5_384"] = flops(b5_video, clip)
    with open(os.path.join(args.out_dir, "zoomnext_meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
