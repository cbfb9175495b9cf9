"""Times a comparison model's eval forward on CPU: fgstp (tch) vs its authors' PyTorch code, in one
run, and checks that the outputs agree (the full-size parity check when run at full size).

Run through scripts/bench/bench-baselines-vs-reference (which builds the Rust side first):
    scripts/bench/bench-baselines-vs-reference SLTNET_CHECKOUT ZOOMNEXT_CHECKOUT [--models a,b] \
        [--backbone b5] [--rounds 5] [--threads N] [--small]

One model per process (the two checkouts have packages of the same names): --model slt-net |
slt-net-long | zoomnext | zoomnext-video, --ref the matching checkout. The reference model is
built by this repository's fixture scripts (scripts/fixtures/make_slt_net_fixture.py,
scripts/fixtures/make_zoomnext_fixture.py, which patch the checkouts in memory only), its weights
randomised and torch.save'd; fgstp loads that file strictly. Both sides get the same inputs, the
same intra-op thread count, eval mode and no_grad; after a warm-up each they run alternately (the
order flips every round), each timing only its own forward.

Inputs per model, batch 1 (the reference's test-time shapes):
  slt-net         frames t, t+1, t+2 at SIZE×SIZE (352), ImageNet-normalised
  slt-net-long    one frame [1, 4, 256, 448] (RGB + prior, as test_video_long_term.py runs a clip:
                  each frame alone). The reference's NS op is a CUDA extension: on the CPU it runs
                  as --ns-backend says — "port" (default; the fixture script's PyTorch unfold +
                  einsum port, checked against reference.cpp) or "reference-cpp" (the authors'
                  serial C++ loop, far slower than their GPU kernel and not what anyone runs)
  zoomnext        one frame at three zoom scales of a SIZE (384) base
  zoomnext-video  one clip of 5 frames at three zoom scales
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

import torch
from safetensors.torch import load_file, save_file

# The fixture generators (scripts/fixtures/) build the reference models.
FIXTURE_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(FIXTURE_SCRIPTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_sltnet(args, gen):
    """(model, inputs, call): the reference model, its inputs, and how to run it → list of maps."""
    fix = load_script("make_slt_net_fixture")
    if args.model == "slt-net-long" and args.ns_backend == "reference-cpp":
        cpp = fix.build_reference_cpp(args.ref)
        if cpp is None:
            sys.exit("--ns-backend reference-cpp needs g++")
        backend = fix.NsBackend(cpp, True)
    else:
        backend = fix.NsBackend(None, False)
    after_tem, short_term, long_term = fix.import_reference(args.ref, args.backbone, backend)
    if args.model == "slt-net":
        opt = types.SimpleNamespace(trainsize=args.size, pretrained_cod10k=None, pvtv2_pretrained=False)
        model = short_term.VideoModel(opt)
        fix.fit_rfbs(after_tem, model)
        fix.randomise(model, gen)
        mean = torch.tensor(fix.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(fix.IMAGENET_STD).view(1, 3, 1, 1)
        frames = [(torch.rand(1, 3, args.size, args.size, generator=gen) - mean) / std for _ in range(3)]

        def call():
            out12, out13, fused = model(frames)
            return list(out12) + list(out13) + [fused]

        return model, frames, call
    opt = types.SimpleNamespace(trainsize=352, short_pretrained=None, pvtv2_pretrained=False)
    model = long_term.VideoModel(opt)
    fix.fit_rfbs(after_tem, model)
    fix.randomise(model, gen)
    h, w = fix.LONG_SIZE
    frame = torch.rand(1, 4, h, w, generator=gen)

    def call():
        return list(model(frame.unsqueeze(1)))

    return model, [frame], call


def build_zoomnext(args, gen):
    fix = load_script("make_zoomnext_fixture")
    pvt, zoomnext, _, _ = fix.import_reference(args.ref)
    frames = 5 if args.model == "zoomnext-video" else 1
    base = zoomnext.videoPvtV2B5_ZoomNeXt if frames > 1 else zoomnext.PvtV2B2_ZoomNeXt
    encoder = getattr(pvt, f"pvt_v2_eff_{args.backbone}")

    class Model(base):
        def set_backbone(self, pretrained, use_checkpoint):
            self.encoder = encoder(pretrained=False, use_checkpoint=use_checkpoint)

    model = Model(pretrained=False, num_frames=frames)
    fix.randomise(model, gen)
    if frames > 1:
        fix.randomise_temporal(model, gen, 0.1)
    scales = [torch.randint(0, 256, (frames, 3, int(args.size * s), int(args.size * s)), generator=gen)
              .float() / 255 for s in (0.5, 1.0, 1.5)]
    data = {"image_s": scales[0], "image_m": scales[1], "image_l": scales[2]}

    def call():
        return [model(data=data)]

    return model, scales, call


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["slt-net", "slt-net-long", "zoomnext", "zoomnext-video"])
    ap.add_argument("--ref", required=True, help="the model's reference checkout")
    ap.add_argument("--bench-bin", required=True, help="the built baseline_forward_bench example")
    ap.add_argument("--backbone", default="b5", choices=[f"b{i}" for i in range(6)])
    ap.add_argument("--size", type=int, default=None, help="slt-net: 352, zoomnext: 384 (the base)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--ns-backend", default="port", choices=["port", "reference-cpp"])
    ap.add_argument("--fused", action="store_true",
                    help="fgstp's faster computation order (model.fused; ZoomNeXt: fused attention in the encoder)")
    ap.add_argument("--seed", type=int, default=2025)
    args = ap.parse_args()
    if args.size is None:
        args.size = 384 if args.model.startswith("zoomnext") else 352
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    build = build_zoomnext if args.model.startswith("zoomnext") else build_sltnet
    model, inputs, call = build(args, gen)
    model.eval()

    # The weights and inputs it hands the Rust side are hundreds of MB at full size.
    work = tempfile.mkdtemp(prefix="fgstp-baseline-bench-")
    try:
        run_side_by_side(args, model, inputs, call, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_side_by_side(args, model, inputs, call, work):
    weights = os.path.join(work, "weights.pth")
    inputs_file = os.path.join(work, "inputs.safetensors")
    torch.save(model.state_dict(), weights)
    save_file({f"input.{i}": t.contiguous() for i, t in enumerate(inputs)}, inputs_file)

    rust = subprocess.Popen(
        [args.bench_bin, "--kind", args.model, "--backbone", args.backbone, "--weights", weights,
         "--inputs", inputs_file, "--threads", str(args.threads)] + (["--fused"] if args.fused else []),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def rust_command(line):
        rust.stdin.write(line + "\n")
        rust.stdin.flush()
        if line == "quit":
            return ""
        reply = rust.stdout.readline().strip()
        if not reply:
            sys.exit(f"baseline_forward_bench stopped (exit code {rust.wait()})")
        return reply

    def reference_forward():
        start = time.perf_counter()
        with torch.no_grad():
            out = call()
        return out, time.perf_counter() - start

    ready = rust.stdout.readline().strip()  # after its load and warm-up forward
    if ready != "ready":
        sys.exit(f"baseline_forward_bench did not start: {ready!r}")
    reference_out, _ = reference_forward()  # warm-up
    shape = " ".join("x".join(str(d) for d in t.shape) for t in inputs)
    print(f"{args.model} {args.backbone}{' (fgstp fused)' if args.fused else ''}, inputs {shape}, {args.threads} threads, torch {torch.__version__}; "
          f"{args.rounds} alternating rounds; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    ours, theirs = [], []
    for r in range(args.rounds):
        for side in (("rust", "torch") if r % 2 == 0 else ("torch", "rust")):
            if side == "rust":
                ours.append(float(rust_command("run").split()[1]))
            else:
                reference_out, secs = reference_forward()
                theirs.append(secs)
        print(f"  round {r + 1}: fgstp {ours[-1]:.3f} s, PyTorch {theirs[-1]:.3f} s", file=sys.stderr)
    out_file = os.path.join(work, "outputs.safetensors")
    rust_command(f"save {out_file}")
    rust_command("quit")
    rust.wait()
    ours_out = load_file(out_file)
    diffs = [(ours_out[f"map.{i}"] - t).abs().max().item() for i, t in enumerate(reference_out)]
    median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"{args.model}: fgstp (tch) median {median_ours:.3f} s (min {min(ours):.3f}, max {max(ours):.3f}); "
          f"PyTorch eager median {median_theirs:.3f} s (min {min(theirs):.3f}, max {max(theirs):.3f}); "
          f"ratio fgstp / PyTorch = {median_ours / median_theirs:.3f}")
    print(f"{args.model}: max abs diff over its {len(diffs)} output maps: {max(diffs):.3e}")
    if args.model == "slt-net-long":
        print(f"{args.model}: the reference's NS op ran as {args.ns_backend!r} (CUDA-only in the reference)")


if __name__ == "__main__":
    main()
