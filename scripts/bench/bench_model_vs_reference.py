"""Times FGSTP's eval forward on CPU: fgstp (tch) vs the reference PyTorch code, in one run.

Run through scripts/bench/bench-model-vs-reference (which builds the Rust side first):
    scripts/bench/bench-model-vs-reference REF_CHECKOUT [--backbone b5] [--size 352] [--rounds 7] [--threads N]

Both sides get the same randomised weights (the reference's torch.save'd state dict, loaded by
fgstp's .pth reader), the same three frames, the same intra-op thread count, eval mode and no_grad.
After a warm-up each, they run alternately (the order flips every round) so machine load hits
both alike; each side times only its own forward. Finally fgstp's outputs are compared with the
reference's: the full-size parity check.
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file, save_file

# The fixture generators (scripts/fixtures/) build the reference models.
FIXTURE_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def load_fixture_module():
    spec = importlib.util.spec_from_file_location("make_model_fixture", os.path.join(FIXTURE_SCRIPTS, "make_model_fixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref_checkout")
    ap.add_argument("--bench-bin", required=True, help="the built forward_bench example")
    ap.add_argument("--backbone", default="b5", choices=[f"b{i}" for i in range(6)])
    ap.add_argument("--size", type=int, default=352)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--fused", action="store_true", help="fgstp's fused computation order (model.fused)")
    ap.add_argument("--workdir", default="/tmp/fgstp-bench")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)

    fixture = load_fixture_module()
    torch.manual_seed(args.seed)
    model = fixture.build_reference(args.ref_checkout, args.backbone)
    gen = torch.Generator().manual_seed(args.seed + 1)
    fixture.randomise(model, gen)
    model.eval()
    frames = [torch.randn(1, 3, args.size, args.size, generator=gen) for _ in range(3)]

    weights = os.path.join(args.workdir, f"fgstp_{args.backbone}.pth")
    frames_file = os.path.join(args.workdir, "frames.safetensors")
    torch.save(model.state_dict(), weights)
    save_file({f"frame.{i}": f for i, f in enumerate(frames)}, frames_file)

    rust = subprocess.Popen(
        [args.bench_bin, "--serve", "--backbone", args.backbone, "--weights", weights,
         "--frames", frames_file, "--threads", str(args.threads)] + (["--fused"] if args.fused else []),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def rust_command(line):
        rust.stdin.write(line + "\n")
        rust.stdin.flush()
        if line == "quit":
            return ""
        reply = rust.stdout.readline().strip()
        if not reply:
            sys.exit(f"forward_bench stopped (exit code {rust.wait()})")
        return reply

    def reference_forward():
        start = time.perf_counter()
        with torch.no_grad():
            out = model(frames)
        return out, time.perf_counter() - start

    ready = rust.stdout.readline().strip()  # after its load and warm-up forward
    if not ready.startswith("ready"):
        sys.exit(f"forward_bench did not start: {ready!r}")
    reference_out, _ = reference_forward()  # warm-up
    print(f"{args.backbone} at {args.size}x{args.size}, batch 1, {args.threads} threads, torch {torch.__version__}, "
          f"fgstp {'fused' if args.fused else 'unfused (the reference order)'}; "
          f"{args.rounds} alternating rounds; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)

    ours, theirs = [], []
    for r in range(args.rounds):
        order = ("rust", "torch") if r % 2 == 0 else ("torch", "rust")
        for side in order:
            if side == "rust":
                ours.append(float(rust_command("run").split()[1]))
            else:
                reference_out, secs = reference_forward()
                theirs.append(secs)
        print(f"  round {r + 1}: fgstp {ours[-1]:.3f} s, PyTorch {theirs[-1]:.3f} s", file=sys.stderr)

    out_file = os.path.join(args.workdir, "fgstp_outputs.safetensors")
    rust_command(f"save {out_file}")
    rust_command("quit")
    rust.wait()

    ours_out = load_file(out_file)
    pair_t1, pair_t2, fused = reference_out
    reference = {f"pair_t1.{i}": t for i, t in enumerate(pair_t1)}
    reference.update({f"pair_t2.{i}": t for i, t in enumerate(pair_t2)})
    reference["fused"] = fused
    diffs = {name: (ours_out[name] - t).abs().max().item() for name, t in reference.items()}

    median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"fgstp (tch)      median {median_ours:.3f} s  (min {min(ours):.3f}, max {max(ours):.3f})")
    print(f"PyTorch eager    median {median_theirs:.3f} s  (min {min(theirs):.3f}, max {max(theirs):.3f})")
    print(f"ratio fgstp / PyTorch = {median_ours / median_theirs:.3f}  (below 1: fgstp is faster)")
    print("max abs diff vs the reference: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print(f"max over all outputs: {max(diffs.values()):.3e}")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work slows both sides; on a busy "
          f"machine OMP_WAIT_POLICY=PASSIVE keeps libtorch's threads from spinning)")


if __name__ == "__main__":
    main()
