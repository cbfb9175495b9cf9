"""Times reading a full-size FGSTP-b5 checkpoint: fgstp against torch.load.

Usage: scripts/pytools scripts/bench/bench_checkpoint_read.py [PATH_TO_FGSTP_BINARY] [--repeat N]
(default binary: target/release/fgstp, else target/debug/fgstp).

Writes, in a temporary directory, `torch.save(state_dict)` of an OrderedDict with every key and
shape of FGSTP with PVTv2-b5 (crates/model/tests/fixtures/parity/fgstp_b5_keys.txt, float32,
random values, int64 BatchNorm counters), then reports the best of N wall-clock times of
  * torch.load(path, weights_only=True)            (PyTorch's safe loader)
  * fgstp weights inspect --no-check path          (fgstp's reader alone)
  * fgstp weights convert path out.safetensors     (reader + safetensors writer)
  * fgstp weights inspect path                     (reader + a b5 model built for the key check)
and checks that the converted file holds exactly PyTorch's tensors.
"""

import argparse
import collections
import os
import subprocess
import tempfile
import time

import torch
from safetensors.torch import load_file

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
KEYS = os.path.join(REPO, "crates", "model", "tests", "fixtures", "parity", "fgstp_b5_keys.txt")


def best_of(n, fn):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fgstp", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="threads for both torch and fgstp (default: torch's default)")
    args = ap.parse_args()
    fgstp = args.fgstp or next(
        p for p in (os.path.join(REPO, "target", d, "fgstp") for d in ("release", "debug"))
        if os.path.exists(p))

    torch.set_num_threads(args.threads)
    fgstp = [fgstp, "--threads", str(args.threads)]
    gen = torch.Generator().manual_seed(2025)
    sd = collections.OrderedDict()
    for line in open(KEYS):
        key, shape = line.split(" ", 1)
        shape = [int(d) for d in shape.strip().strip("[]").split(",") if d.strip()]
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(100, dtype=torch.int64)
        else:
            sd[key] = torch.randn(shape, generator=gen)

    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "fgstp_b5.pth")
        torch.save(sd, pth)
        out = os.path.join(tmp, "fgstp_b5.safetensors")
        size = os.path.getsize(pth)
        params = sum(t.numel() for t in sd.values())
        print(f"checkpoint: {len(sd)} tensors, {params:,} elements, {size / 1e6:.1f} MB "
              f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")

        t_torch = best_of(args.repeat, lambda: torch.load(pth, weights_only=True))
        read = [*fgstp, "weights", "inspect", "--no-check", pth]
        t_read = best_of(args.repeat,
                         lambda: subprocess.run(read, check=True, stdout=subprocess.DEVNULL))
        convert = [*fgstp, "weights", "convert", "--force", pth, out]
        t_convert = best_of(args.repeat,
                            lambda: subprocess.run(convert, check=True, stdout=subprocess.DEVNULL))
        inspect = [*fgstp, "weights", "inspect", pth]
        t_inspect = best_of(args.repeat,
                            lambda: subprocess.run(inspect, check=True, stdout=subprocess.DEVNULL))
        print(f"torch.load(weights_only=True):        {t_torch:6.2f} s")
        print(f"fgstp weights inspect --no-check:     {t_read:6.2f} s (read; process start included)")
        print(f"fgstp weights convert -> safetensors: {t_convert:6.2f} s (read + write)")
        print(f"fgstp weights inspect:                {t_inspect:6.2f} s (read + b5 model key check)")

        got = load_file(out)
        assert list(sorted(got)) == list(sorted(sd)), "keys differ"
        for k, v in sd.items():
            assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
        print("converted tensors: identical to PyTorch's")
        print(subprocess.run(inspect, check=True, capture_output=True, text=True).stdout
              .split("\n\n")[0])


if __name__ == "__main__":
    main()
