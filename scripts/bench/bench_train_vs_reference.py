"""Times one FGSTP training step on CPU, phase by phase: fgstp (tch) vs the reference's train.py,
in one run. Run through scripts/bench/bench-train-vs-reference (which builds the Rust side first):

    scripts/bench/bench-train-vs-reference REF_CHECKOUT [--backbone b5] [--size 256] [--batch 2] [--rounds 6] [--threads N]

Both sides start from the same randomised weights (the reference's torch.save'd state dict) and
take the same frames and mask. Each step is the reference's: training mode (every BatchNorm on
batch statistics, as its model.train() leaves them), forward of the triplet, the nine structure
losses summed in train.py's order, backward, clip by value at 0.5, Adam at lr 1e-4. The sides
alternate (the order flips every round, after two warm-up steps each) so machine load hits both
alike. Reported: the median step and each phase's median, the steps' ratio, and both peak RSS.
"""

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
import types

import torch
from safetensors.torch import save_file

# The fixture generators (scripts/fixtures/) build the reference models.
FIXTURE_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
PHASES = ["forward", "loss", "backward", "clip", "optimiser"]


def load_fixture_module():
    spec = importlib.util.spec_from_file_location("make_model_fixture", os.path.join(FIXTURE_SCRIPTS, "make_model_fixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_training_functions(ref_dir):
    """train.py's structure_loss and utils' clip_gradient, imported from the user's checkout."""
    for name in ["wandb", "tensorboardX", "thop", "cv2"]:
        stub = types.ModuleType(name)
        stub.SummaryWriter = stub.profile = stub.clever_format = object
        sys.modules.setdefault(name, stub)
    sys.path.insert(0, os.path.abspath(ref_dir))
    sys.path.insert(0, os.path.join(os.path.abspath(ref_dir), "dataloaders"))
    import train as reference  # noqa: E402
    from utils.utils import clip_gradient  # noqa: E402
    return reference.structure_loss, clip_gradient


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref_checkout")
    ap.add_argument("--bench-bin", required=True, help="the built step_bench example")
    ap.add_argument("--backbone", default="b5", choices=[f"b{i}" for i in range(6)])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--fused", action="store_true", help="fgstp's fused computation order")
    ap.add_argument("--workdir", default="/tmp/fgstp-bench-train")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)

    fixture = load_fixture_module()
    torch.manual_seed(args.seed)
    model = fixture.build_reference(args.ref_checkout, args.backbone)
    gen = torch.Generator().manual_seed(args.seed + 1)
    fixture.randomise(model, gen)
    structure_loss, clip_gradient = reference_training_functions(args.ref_checkout)
    frames = [torch.randn(args.batch, 3, args.size, args.size, generator=gen) for _ in range(3)]
    mask = (torch.rand(args.batch, 1, args.size, args.size, generator=gen) > 0.9).float()

    weights = os.path.join(args.workdir, f"fgstp_{args.backbone}.pth")
    inputs = os.path.join(args.workdir, "inputs.safetensors")
    torch.save(model.state_dict(), weights)
    save_file({**{f"frame.{i}": f for i, f in enumerate(frames)}, "mask": mask}, inputs)
    command = [args.bench_bin, "--serve", "--backbone", args.backbone, "--weights", weights,
               "--inputs", inputs, "--threads", str(args.threads)]
    if args.fused:
        command.append("--fused")
    rust = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def rust_command(line):
        rust.stdin.write(line + "\n")
        rust.stdin.flush()
        if line == "quit":
            return ""
        reply = rust.stdout.readline().strip()
        if not reply:
            sys.exit(f"step_bench stopped (exit code {rust.wait()})")
        return reply

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def reference_step():
        times = []
        start = time.perf_counter()

        def lap():
            nonlocal start
            now = time.perf_counter()
            times.append(now - start)
            start = now

        optimizer.zero_grad()
        preds1, preds2, pred = model(frames)
        lap()
        loss1 = structure_loss(preds1[0], mask) + structure_loss(preds1[1], mask) + structure_loss(preds1[2], mask)
        loss2 = structure_loss(preds2[0], mask) + structure_loss(preds2[1], mask) + structure_loss(preds2[2], mask)
        loss_final = structure_loss(pred, mask) + structure_loss(preds1[3], mask) + structure_loss(preds2[3], mask)
        loss = loss1 + loss2 + loss_final
        lap()
        loss.backward()
        lap()
        clip_gradient(optimizer, 0.5)
        lap()
        optimizer.step()
        lap()
        return times

    ready = rust.stdout.readline().strip()
    if not ready.startswith("ready"):
        sys.exit(f"step_bench did not start: {ready!r}")
    for _ in range(2):  # warm-up: first-touch allocation, oneDNN's primitive caches
        reference_step()
        rust_command("step")
    print(f"{args.backbone} at {args.size}x{args.size}, batch {args.batch}, {args.threads} threads, torch "
          f"{torch.__version__}; {args.rounds} alternating rounds; load average {os.getloadavg()[0]:.1f}",
          file=sys.stderr)
    ours, theirs = [], []
    for r in range(args.rounds):
        order = ("rust", "torch") if r % 2 == 0 else ("torch", "rust")
        for side in order:
            if side == "rust":
                ours.append([float(x) for x in rust_command("step").split()[1:]])
            else:
                theirs.append(reference_step())
        print(f"  round {r + 1}: fgstp {sum(ours[-1]):.3f} s, PyTorch {sum(theirs[-1]):.3f} s", file=sys.stderr)
    rust_rss = int(rust_command("rss").split()[1])
    rust_command("quit")
    rust.wait()
    torch_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def medians(steps):
        return [statistics.median(s[i] for s in steps) for i in range(len(PHASES))], statistics.median(sum(s) for s in steps)

    (ours_phases, ours_total), (theirs_phases, theirs_total) = medians(ours), medians(theirs)
    print(f"{'phase':<10} {'fgstp':>9} {'PyTorch':>9} {'ratio':>7}")
    for name, a, b in zip(PHASES, ours_phases, theirs_phases):
        print(f"{name:<10} {a:>8.3f}s {b:>8.3f}s {a / b:>7.2f}")
    print(f"{'step':<10} {ours_total:>8.3f}s {theirs_total:>8.3f}s {ours_total / theirs_total:>7.2f}")
    print(f"peak RSS: fgstp {rust_rss / 1e9:.2f} GB, PyTorch {torch_rss / 1e9:.2f} GB (its process also holds the "
          f"reference model's build)")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
