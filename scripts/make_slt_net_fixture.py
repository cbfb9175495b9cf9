"""Runs the authors' PyTorch SLT-Net (XuelianCheng/SLT-Net) to produce parity data for fgstp-model.

Usage (from the repo root):
    scripts/pytools scripts/make_slt_net_fixture.py REF_CHECKOUT OUT_DIR \
        [--backbone tiny|b0|...|b5] [--seed 2022] [--ns-backend auto|reference-cpp|port]
        [--short-size H W] [--flops]

REF_CHECKOUT is your own checkout of https://github.com/XuelianCheng/SLT-Net (nothing of it is
copied here). The published code needs a GPU and a few packages that play no part in the forward
pass; this script patches, in memory only:
  * `mmseg` / `mmcv`: imported by lib/pvtv2_afterTEM.py for code that is commented out -> empty
    stand-in modules;
  * `timm.models.create_model`: called the timm-0.4 way (timm 0.9 hands the model function
    arguments the reference's PVTv2 rejects) -> a stand-in that calls the reference's own
    `lib/pvt_v2.py` factory with the same arguments (drop_rate 0, drop_path_rate 0.3; timm 0.4
    drops the `None` drop_block_rate), or for `--backbone tiny` the reference's
    `PyramidVisionTransformerV2` class with smaller widths/depths;
  * the RFBs, whose input widths are hard-coded for 128/320/512-wide stages, are rebuilt with the
    reference's own `RFB_modified` for the chosen encoder's widths;
  * `self_cuda_backend` (the PNS CUDA extension behind the long-term model's NS blocks, built from
    lib/ref_video/PNS/PNS_Module/sa.cu) cannot run without CUDA. With `--ns-backend reference-cpp`
    (the default when g++ is available) its two forward ops are the reference's own serial CPU
    implementation, lib/ref_video/PNS/PNS_Module/reference.cpp, compiled here with g++ against
    this torch (`sa_weight_forward_Ref`, `sa_map_forward_Ref`, which the CUDA kernels agree with
    line by line); `--ns-backend port` uses a PyTorch port written in this script (unfold + einsum),
    which is in any case checked against reference.cpp on random tensors and against the forward
    run when reference.cpp is available.

The fixture's sizes: with PVTv2-b0 each checkpoint is 8.8 MB in float16 (the encoder alone is
3.4 M parameters); `--backbone tiny` (the default; 2.9 MB per checkpoint, of which the 32-channel
RFBs and decoder the reference hard-codes are 1.1 MB) is the reference's own PyramidVisionTransformerV2
with stage widths 16/32/80/128, heads 1/2/5/8 (head width 16 as in every released variant), mlp
ratios 8/8/4/4, depths 2/1/1/1, spatial-reduction ratios 8/4/2/1: every op of every released variant.

Writes into OUT_DIR:
  slt_net_<backbone>.pth            short-term model: torch.save(model.state_dict()), float16 (every
                                    value is float16-exact; the forward ran in float32)
  slt_net_long_<backbone>.pth       long-term model as train_video_long_term.py saves it: the model
                                    wrapped in nn.DataParallel, so every key starts with `module.`
  slt_net_<backbone>_nested.data.pkl  the pickle of torch.save({"state_dict": short-term state
                                    dict, "epoch": 1}) (the nested layout of training checkpoints,
                                    which utils/pyt_utils.py unwraps); the rest of that zip is the
                                    plain checkpoint's storages, byte for byte (checked here), so
                                    the test re-packs it from slt_net_<backbone>.pth
  slt_net_<backbone>_io.safetensors inputs and outputs (see GRID below), metadata: the settings,
                                    the NS backend, and with --flops the reference's FLOP counts
      short.frame.0..2 uint8 [1,3,256,320] (--short-size); the model input is (x/255 - mean)/std per channel with
                       ImageNet mean/std (the reference's ToTensor + Normalize)
      short.out12.0..3, short.out13.0..3, short.fused   the nine output maps
      long.clip        uint8 [1,2,4,256,448]: RGB + the short-term prediction as 4th channel; the
                       model input is x/255 (the reference's long-term loader has no Normalize)
      long.out.0..3    the four maps [2,1,256,448] of the clip (B=1, T=2: the NS blocks relate the
                       two frames), long.frames.out.0..3: the same two frames fed as the test script
                       feeds a clip, [T,1,4,H,W] (each frame alone in the NS blocks)
      ns.*             an NS block's relevance and aggregation on random tensors (reference.cpp)
  All maps are stored on a GRID (below).
  slt_net_<backbone>_keys.txt, slt_net_long_<backbone>_keys.txt   every key with its shape
  slt_net_b5_keys.txt, slt_net_long_b5_keys.txt                   the same for PVTv2-b5

GRID: the maps are stored at rows and columns 0, 3, 6, ... (`[..., ::3, ::3]`), a ninth of their
pixels, to keep the fixture small. 3 is coprime with the decoder's upsampling factors (8, 16, 32),
so every interpolation phase is compared, and the grid includes the first row and column and,
where the side is 1 mod 3 (256, 448, 352), the last (at the default 256x320 short-term size the
last column compared is 318 of 0..319).

Every weight is randomised (LayerNorm/BatchNorm affine parameters, biases, the correlation blocks'
zero-initialised `W`, the NS blocks' LayerNorm), as are the BatchNorm running statistics, and the
output convs and the NS blocks' query/key convs are scaled up (SPREAD) so that every path, the
NS blocks' gate and the relation between frames included, moves the outputs far above the
tolerance; the models run in eval mode under no_grad. The metadata records how far each known NS
mistake (-inf off the map, softmax in the aggregation, a per-head gate, no dilation, no prior)
would move long.out.3.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
import warnings
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

RADIUS = 3  # the NS block's radius (7x7 window) for every head
DILATIONS = [1, 3, 5, 7]  # per head
SHORT_SIZE = (256, 320)
LONG_SIZE = (256, 448)  # fixed by the NS blocks' LayerNorm([8, 16, 28])
TINY = dict(embed_dims=[16, 32, 80, 128], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
            depths=[2, 1, 1, 1], sr_ratios=[8, 4, 2, 1])
# Weight multipliers applied after randomisation (see `randomise`).
SPREAD = {"NCD.conv5.weight": 32, "_gra.score.weight": 4, "fusion_conv.2.weight": 8,
          "query_conv.weight": 2, "key_conv.weight": 2}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


# ---------------------------------------------------------------------------------------------
# The NS ops: a PyTorch port (written from the kernels' description) and the reference's serial
# C++ code compiled for the CPU.

def port_relevance(query, key, radius, dilation):
    """[B,T,C,H,W] x2 -> [B,T,T*D*D,H,W]: entry s*D*D + i*D + j of frame t at (h, w) is
    <query[t,:,h,w], key[s,:,h+(i-r)*dil, w+(j-r)*dil]>, 0 where that position is off the map."""
    b, t, c, h, w = query.shape
    d = 2 * radius + 1
    pad = radius * dilation
    cols = F.unfold(key.reshape(b * t, c, h, w), d, dilation=dilation, padding=pad)
    cols = cols.reshape(b, t, c, d * d, h, w)
    return torch.einsum("btchw,bscnhw->btsnhw", query, cols).reshape(b, t, t * d * d, h, w)


def port_aggregation(weight, proj, radius, dilation):
    """weight [B,T,T*D*D,H,W], proj [B,T,C,H,W] -> [B,T,C,H,W]: the weighted sum of the in-bounds
    neighbours' proj vectors."""
    b, t, c, h, w = proj.shape
    d = 2 * radius + 1
    pad = radius * dilation
    cols = F.unfold(proj.reshape(b * t, c, h, w), d, dilation=dilation, padding=pad)
    cols = cols.reshape(b, t, c, d * d, h, w)
    return torch.einsum("btsnhw,bscnhw->btchw", weight.reshape(b, t, t, d * d, h, w), cols)


BINDING = r"""
#include <torch/extension.h>
#include <cmath>
// Declared as in the reference's reference.h (which does not include torch itself).
void sa_weight_forward_Ref(const torch::Tensor& query, const torch::Tensor& key, torch::Tensor& weight,
                           int B, int T, int C, int H, int W, int radius, int dilation);
void sa_map_forward_Ref(const torch::Tensor& weight, const torch::Tensor& proj, torch::Tensor& out,
                        int B, int T, int C, int H, int W, int radius, int dilation);

// As the Python wrapper (PNS_Module.py) calls them: the relevance buffer starts at -inf.
torch::Tensor weight_forward(torch::Tensor query, torch::Tensor key, int64_t radius, int64_t dilation) {
  auto s = query.sizes();
  int64_t d = 2 * radius + 1;
  auto weight = torch::full({s[0], s[1], d * d * s[1], s[3], s[4]}, -INFINITY, query.options());
  sa_weight_forward_Ref(query, key, weight, s[0], s[1], s[2], s[3], s[4], radius, dilation);
  return weight;
}
torch::Tensor map_forward(torch::Tensor weight, torch::Tensor proj, int64_t radius, int64_t dilation) {
  auto s = proj.sizes();
  auto out = torch::zeros_like(proj);
  sa_map_forward_Ref(weight, proj, out, s[0], s[1], s[2], s[3], s[4], radius, dilation);
  return out;
}
TORCH_LIBRARY(sltnet_reference_cpp, m) {
  m.def("weight_forward", &weight_forward);
  m.def("map_forward", &map_forward);
}
"""


def build_reference_cpp(ref_dir):
    """Compiles the reference's serial reference.cpp (+ a small binding) and loads it as torch ops.
    Returns None where no C++ compiler is available."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        return None
    from torch.utils import cpp_extension
    src = os.path.join(ref_dir, "lib/ref_video/PNS/PNS_Module/reference.cpp")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read() + BINDING.encode() + torch.__version__.encode()).hexdigest()
    cache = os.environ.get("FGSTP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fgstp")
    build = os.path.join(cache, f"sltnet-reference-cpp-{digest[:16]}")
    lib = os.path.join(build, "sltnet_reference_cpp.so")
    if not os.path.exists(lib):  # compiling takes minutes: once per reference.cpp and torch
        os.makedirs(build, exist_ok=True)
        binding = os.path.join(build, "binding.cpp")
        with open(binding, "w") as f:
            f.write(BINDING)
        includes = cpp_extension.include_paths() + [sysconfig.get_paths()["include"]]
        libdirs = cpp_extension.library_paths()
        cmd = [cxx, "-shared", "-fPIC", "-O2", "-std=c++20", "-D_GLIBCXX_USE_CXX11_ABI=1",
               "-DTORCH_EXTENSION_NAME=sltnet_reference_cpp", src, binding, "-o", lib + ".tmp"]
        cmd += [f"-I{p}" for p in includes]
        cmd += [f"-L{p}" for p in libdirs] + [f"-Wl,-rpath,{p}" for p in libdirs]
        cmd += ["-lc10", "-ltorch", "-ltorch_cpu"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"compiling reference.cpp failed:\n{done.stderr[-5000:]}")
        os.replace(lib + ".tmp", lib)
        print(f"compiled reference.cpp in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    torch.ops.load_library(lib)
    return torch.ops.sltnet_reference_cpp


class NsBackend:
    """Stands in for `self_cuda_backend`: the forward ops the reference's PNS_Module.py calls."""

    def __init__(self, reference_cpp, use_reference_cpp):
        self.reference_cpp = reference_cpp
        self.use_reference_cpp = use_reference_cpp

    def weight_forward(self, query, key, weight, radius, dilation):
        if self.use_reference_cpp:
            out = self.reference_cpp.weight_forward(query, key, radius, dilation)
        else:
            out = port_relevance(query, key, radius, dilation)
        weight.copy_(out)

    def map_forward(self, weight, proj, out, radius, dilation):
        if self.use_reference_cpp:
            res = self.reference_cpp.map_forward(weight, proj, radius, dilation)
        else:
            res = port_aggregation(weight, proj, radius, dilation)
        out.copy_(res)


# ---------------------------------------------------------------------------------------------
# Building the reference models

def import_reference(ref_dir, backbone, ns_backend):
    sys.path.insert(0, os.path.abspath(ref_dir))
    warnings.filterwarnings("ignore")  # timm's deprecated import paths, re-registered models
    mmseg = types.ModuleType("mmseg")
    mmseg.models = types.ModuleType("mmseg.models")
    mmseg.models.build_segmentor = None
    mmcv = types.ModuleType("mmcv")
    mmcv.ConfigDict = dict
    sys.modules.update({"mmseg": mmseg, "mmseg.models": mmseg.models, "mmcv": mmcv})
    cuda_ext = types.ModuleType("self_cuda_backend")
    cuda_ext.weight_forward = ns_backend.weight_forward
    cuda_ext.map_forward = ns_backend.map_forward
    sys.modules["self_cuda_backend"] = cuda_ext

    import lib.pvt_v2 as pvt
    import lib.pvtv2_afterTEM as after_tem

    def create_model(name, pretrained=False, **kwargs):
        # timm 0.4's create_model: drop the None-valued arguments, call the registered function.
        assert name == "pvt_v2_b5" and not pretrained, (name, pretrained)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if backbone == "tiny":
            return pvt.PyramidVisionTransformerV2(
                patch_size=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), **TINY, **kwargs)
        return getattr(pvt, f"pvt_v2_{backbone}")(pretrained=False, **kwargs)

    after_tem.create_model = create_model
    import lib.short_term_model as short_term
    import lib.long_term_model as long_term
    return after_tem, short_term, long_term


def fit_rfbs(after_tem, model):
    """The RFB input widths are hard-coded for 128/320/512-wide stages: rebuild them."""
    feat_net = model.backbone.feat_net
    pvt = feat_net.pvtv2_en
    widths = [pvt.patch_embed2.proj.out_channels, pvt.patch_embed3.proj.out_channels,
              pvt.patch_embed4.proj.out_channels]
    for name, width in zip(("rfb2_1", "rfb3_1", "rfb4_1"), widths):
        if getattr(feat_net, name).conv_res.conv.in_channels != width:
            setattr(feat_net, name, after_tem.RFB_modified(width, 32))


@torch.no_grad()
def randomise(model, gen, spread=None):
    """Moves every tensor away from its structured initial value (ones, zeros)."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.05)
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
        elif isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            if module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.05)
            if not module.weight.any():  # the non-local blocks' W starts at zero: make it matter
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.1)
    for name, t in model.state_dict().items():
        # At initialisation the output convs barely move their maps (std ~0.01 logits) and the
        # NS gate is ~1/(T*49): spread them so that every path moves the outputs well above the
        # tolerance. Powers of two keep the values float16-exact.
        for suffix, factor in (SPREAD if spread is None else spread).items():
            if name.endswith(suffix):
                t.mul_(factor)
        if t.is_floating_point():  # float16-exact, so the .pth can be float16
            t.copy_(t.half().float())


def write_nested_pickle(state_dict, plain_path, out_path):
    """torch.save({"state_dict": ..., "epoch": 1}) differs from the plain checkpoint only in its
    pickle (data.pkl; the tensor storages are the same files): keep just that pickle, from which
    the test re-packs the nested checkpoint."""
    import zipfile
    with tempfile.TemporaryDirectory() as tmp:
        nested_path = os.path.join(tmp, "nested.pth")
        torch.save({"state_dict": state_dict, "epoch": 1}, nested_path)
        plain, nested = zipfile.ZipFile(plain_path), zipfile.ZipFile(nested_path)
        strip = lambda names: {n.split("/", 1)[1]: n for n in names}  # noqa: E731
        plain_names, nested_names = strip(plain.namelist()), strip(nested.namelist())
        assert plain_names.keys() == nested_names.keys()
        differ = [n for n in plain_names if plain.read(plain_names[n]) != nested.read(nested_names[n])]
        assert sorted(differ) == [".data/serialization_id", "data.pkl"], differ
        with open(out_path, "wb") as f:
            f.write(nested.read(nested_names["data.pkl"]))


def write_keys(path, state_dict):
    with open(path, "w") as f:
        for name, t in state_dict.items():
            f.write(f"{name} {list(t.shape)}\n")


def grid(t):
    return t[..., ::3, ::3].contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref_checkout")
    ap.add_argument("out_dir")
    ap.add_argument("--backbone", default="tiny", choices=["tiny"] + [f"b{i}" for i in range(6)])
    ap.add_argument("--seed", type=int, default=2022)
    ap.add_argument("--short-size", type=int, nargs=2, default=list(SHORT_SIZE), metavar=("H", "W"),
                    help="the short-term model's input size (the paper's: 352 352)")
    ap.add_argument("--ns-backend", default="auto", choices=["auto", "reference-cpp", "port"])
    ap.add_argument("--flops", action="store_true",
                    help="count the b5 models' FLOPs with torch.utils.flop_counter (slow: b5 forwards)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    reference_cpp = None if args.ns_backend == "port" else build_reference_cpp(args.ref_checkout)
    if args.ns_backend == "reference-cpp" and reference_cpp is None:
        sys.exit("--ns-backend reference-cpp needs a C++ compiler (g++)")
    backend = NsBackend(reference_cpp, reference_cpp is not None)
    after_tem, short_term, long_term = import_reference(args.ref_checkout, args.backbone, backend)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    gen = torch.Generator().manual_seed(args.seed)
    meta = {"backbone": args.backbone, "seed": str(args.seed),
            "ns_backend": "reference.cpp" if backend.use_reference_cpp else "pytorch port"}
    io = {}

    # --- the NS ops alone on random tensors: reference.cpp vs the port ----------------------
    port_vs_cpp = 0.0
    cases = [(1, 1, 8, 5, 9, 1), (2, 2, 8, 6, 7, 3), (1, 3, 4, 9, 11, 5), (1, 2, 8, 16, 28, 7)]
    for i, (b, t, c, h, w, dil) in enumerate(cases):
        q = torch.randn(b, t, c, h, w, generator=gen)
        k = torch.randn(b, t, c, h, w, generator=gen)
        v = torch.randn(b, t, c, h, w, generator=gen)
        rel = port_relevance(q, k, RADIUS, dil)
        agg = port_aggregation(rel, v, RADIUS, dil)
        if reference_cpp is not None:
            rel_cpp = reference_cpp.weight_forward(q, k, RADIUS, dil)
            agg_cpp = reference_cpp.map_forward(rel_cpp, v, RADIUS, dil)
            port_vs_cpp = max(port_vs_cpp, (rel - rel_cpp).abs().max().item(),
                              (agg - agg_cpp).abs().max().item())
            rel, agg = rel_cpp, agg_cpp
        if i < 3:  # the 16x28 case only feeds the comparison above
            io.update({f"ns.{i}.query": q, f"ns.{i}.key": k, f"ns.{i}.value": v,
                       f"ns.{i}.relevance": rel, f"ns.{i}.aggregation": agg})
            meta[f"ns.{i}.dilation"] = str(dil)
    if reference_cpp is not None:
        print(f"NS ops, port vs reference.cpp: max abs diff {port_vs_cpp:.3e}", file=sys.stderr)
        meta["ns_port_vs_reference_cpp"] = f"{port_vs_cpp:.3e}"
        assert port_vs_cpp < 1e-4, port_vs_cpp

    # --- short-term model ---------------------------------------------------------------------
    torch.manual_seed(args.seed)
    opt = types.SimpleNamespace(trainsize=352, pretrained_cod10k=None, pvtv2_pretrained=False)
    short = short_term.VideoModel(opt)
    fit_rfbs(after_tem, short)
    randomise(short, gen)
    short.eval()
    h, w = args.short_size
    frames_u8 = [torch.randint(0, 256, (1, 3, h, w), generator=gen, dtype=torch.uint8) for _ in range(3)]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    frames = [(f.float() / 255 - mean) / std for f in frames_u8]
    t0 = time.perf_counter()
    with torch.no_grad():
        out12, out13, fused = short(frames)
    print(f"short-term forward: {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    io.update({f"short.frame.{i}": f for i, f in enumerate(frames_u8)})
    io.update({f"short.out12.{i}": grid(t) for i, t in enumerate(out12)})
    io.update({f"short.out13.{i}": grid(t) for i, t in enumerate(out13)})
    io["short.fused"] = grid(fused)

    # --- long-term model ----------------------------------------------------------------------
    opt = types.SimpleNamespace(trainsize=352, short_pretrained=None, pvtv2_pretrained=False)
    long_model = long_term.VideoModel(opt)
    fit_rfbs(after_tem, long_model)
    randomise(long_model, gen)
    long_model.eval()
    h, w = LONG_SIZE
    clip_u8 = torch.randint(0, 256, (1, 2, 4, h, w), generator=gen, dtype=torch.uint8)
    clip = clip_u8.float() / 255
    t0 = time.perf_counter()
    with torch.no_grad():
        long_out = long_model(clip)
        # test_video_long_term.py stacks a clip's frames as [T, 1, 4, H, W]: each frame is then a
        # batch entry of its own, a clip of one frame in the NS blocks.
        frames_out = long_model(clip.transpose(0, 1).contiguous())
    print(f"long-term forwards ({meta['ns_backend']}): {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    if backend.use_reference_cpp:
        backend.use_reference_cpp = False
        with torch.no_grad():
            port_out = long_model(clip)
        backend.use_reference_cpp = True
        diff = max((a - b).abs().max().item() for a, b in zip(long_out, port_out))
        print(f"long-term outputs, port vs reference.cpp: max abs diff {diff:.3e}", file=sys.stderr)
        meta["long_port_vs_reference_cpp"] = f"{diff:.3e}"
    io["long.clip"] = clip_u8
    io.update({f"long.out.{i}": grid(t) for i, t in enumerate(long_out)})
    io.update({f"long.frames.out.{i}": grid(t) for i, t in enumerate(frames_out)})

    # How much the NS traps move the outputs here (so the parity test can see them).
    sensitivity = ns_trap_sensitivity(long_model, clip, long_out, backend)
    meta.update({f"sensitivity.{k}": f"{v:.3e}" for k, v in sensitivity.items()})
    print("NS traps, max abs change of long.out.3:", json.dumps(sensitivity), file=sys.stderr)

    # --- checkpoints --------------------------------------------------------------------------
    short.half()
    sd = short.state_dict()
    torch.save(sd, stem(f"slt_net_{args.backbone}.pth"))
    write_nested_pickle(sd, stem(f"slt_net_{args.backbone}.pth"), stem(f"slt_net_{args.backbone}_nested.data.pkl"))
    write_keys(stem(f"slt_net_{args.backbone}_keys.txt"), sd)
    parallel = nn.DataParallel(long_model.half())  # as train_video_long_term.py saves it
    torch.save(parallel.state_dict(), stem(f"slt_net_long_{args.backbone}.pth"))
    write_keys(stem(f"slt_net_long_{args.backbone}_keys.txt"), long_model.state_dict())

    if args.flops:
        meta.update(count_flops(after_tem, short_term, long_term, backend))

    # b5 key lists (cheap: construction only)
    write_b5_keys(short_term, long_term, args.out_dir)

    from safetensors.torch import save_file
    io = {k: v.contiguous() for k, v in io.items()}
    save_file(io, stem(f"slt_net_{args.backbone}_io.safetensors"), metadata=meta)
    print(json.dumps(meta, indent=1), file=sys.stderr)
    for name, t in io.items():
        if t.is_floating_point() and not name.startswith("ns."):
            print(f"{name}: {list(t.shape)} min {t.min().item():.3f} max {t.max().item():.3f} "
                  f"std {t.std().item():.3f}", file=sys.stderr)


def ns_trap_sensitivity(model, clip, reference_out, backend):
    """Rebuilds the NS blocks' forward with one of the known mistakes at a time."""
    import lib.ref_video.PNS_Module as pns
    saved = backend.use_reference_cpp
    backend.use_reference_cpp = False
    results = {}
    original_forward = pns.NS_Block.forward

    def variant(mistake):
        def forward(self, x):
            x_ = x.permute(0, 2, 1, 3, 4).contiguous()
            chunks = [conv(x_).permute(0, 2, 1, 3, 4).chunk(self.n_head, 2)
                      for conv in (self.query_conv, self.key_conv, self.value_conv)]
            gates, aggregated = [], []
            for i in range(self.n_head):
                dil = DILATIONS[i] if mistake != "dilation_1" else 1
                q = self.bn(chunks[0][i].contiguous())
                rel = port_relevance(q, chunks[1][i].contiguous(), RADIUS, dil) / 8 ** 0.5
                if mistake == "off_map_minus_inf":
                    inside = port_relevance(torch.ones_like(q[:, :, :1]), torch.ones_like(q[:, :, :1]), RADIUS, dil)
                    rel = rel.masked_fill(inside == 0, float("-inf"))
                soft = F.softmax(rel, dim=2)
                gates.append(soft)
                weight = soft if mistake == "aggregate_softmax" else rel.nan_to_num(neginf=0.0)
                aggregated.append(port_aggregation(weight, chunks[2][i].contiguous(), RADIUS, dil))
            if mistake == "gate_first_head":
                gate = gates[0].max(dim=2)[0]
            else:
                gate = torch.cat(gates, dim=2).max(dim=2)[0]
            out = self.output_Linear(torch.cat(aggregated, dim=2).permute(0, 2, 1, 3, 4))
            return (out * gate.unsqueeze(2).permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)
        return forward

    with torch.no_grad():
        for mistake in ["off_map_minus_inf", "aggregate_softmax", "gate_first_head", "dilation_1"]:
            pns.NS_Block.forward = variant(mistake)
            out = model(clip)[3]
            results[mistake] = (out - reference_out[3]).abs().max().item()
        pns.NS_Block.forward = original_forward
        no_prior = clip.clone()
        no_prior[:, :, 3] = 0
        results["prior_zero"] = (model(no_prior)[3] - reference_out[3]).abs().max().item()
    backend.use_reference_cpp = saved
    return results


def write_b5_keys(short_term, long_term, out_dir):
    import lib.pvt_v2 as pvt
    import lib.pvtv2_afterTEM as after_tem
    tiny_create = after_tem.create_model
    after_tem.create_model = lambda name, pretrained=False, **kw: pvt.pvt_v2_b5(
        **{k: v for k, v in kw.items() if v is not None})
    short = short_term.VideoModel(types.SimpleNamespace(trainsize=352, pretrained_cod10k=None))
    write_keys(os.path.join(out_dir, "slt_net_b5_keys.txt"), short.state_dict())
    long_model = long_term.VideoModel(types.SimpleNamespace(trainsize=352, short_pretrained=None))
    write_keys(os.path.join(out_dir, "slt_net_long_b5_keys.txt"), long_model.state_dict())
    after_tem.create_model = tiny_create


def count_flops(after_tem, short_term, long_term, backend):
    """FLOPs (2 x MACs) of one forward of the b5 models as torch.utils.flop_counter counts them
    (convolutions and matrix products): short-term on a 352x352 triplet, the
    long-term model on one 256x448 frame (T = 1, as its test script runs it) and a 10-frame
    clip (as it trains). The NS ops run through the PyTorch port, whose einsums the counter sees;
    the CUDA extension would be invisible to it, so they are also reported on their own."""
    from torch.utils.flop_counter import FlopCounterMode
    import lib.pvt_v2 as pvt
    after_tem.create_model = lambda name, pretrained=False, **kw: pvt.pvt_v2_b5(
        **{k: v for k, v in kw.items() if v is not None})
    backend.use_reference_cpp = False
    out = {}
    short = short_term.VideoModel(types.SimpleNamespace(trainsize=352, pretrained_cod10k=None)).eval()
    frames = [torch.randn(1, 3, 352, 352) for _ in range(3)]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        short(frames)
    out["flops.slt_net_b5_352"] = str(counter.get_total_flops())
    long_model = long_term.VideoModel(types.SimpleNamespace(trainsize=352, short_pretrained=None)).eval()
    for t in (1, 10):
        clip = torch.randn(1, t, 4, *LONG_SIZE)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            long_model(clip)
        out[f"flops.slt_net_long_b5_256x448_t{t}"] = str(counter.get_total_flops())
        q = torch.randn(1, t, 8, 16, 28)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            for dil in DILATIONS:
                port_aggregation(port_relevance(q, q, RADIUS, dil), q, RADIUS, dil)
        out[f"flops.ns_ops_per_block_t{t}"] = str(counter.get_total_flops())
    return out


if __name__ == "__main__":
    main()
