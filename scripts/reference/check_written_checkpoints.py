"""Checks that PyTorch reads the checkpoints `fgstp weights convert` writes.

Usage: scripts/pytools scripts/reference/check_written_checkpoints.py [PATH_TO_FGSTP_BINARY]
(default: target/debug/fgstp; build it first with `cargo build -p fgstp-cli`).

For every fixture of crates/model/tests/fixtures/checkpoint, converts it with fgstp to `.pth`
and to `.safetensors`, then loads the `.pth` with `torch.load(weights_only=True)` (PyTorch's safe
loader, the default since 2.6) and the `.safetensors` with the safetensors package, and compares
both bit for bit with the tensors PyTorch wrote to the fixture's `.expected.safetensors`.
"""

import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(REPO, "crates", "model", "tests", "fixtures", "checkpoint")


def raw(t):
    return t.contiguous().reshape(-1).view(torch.uint8)


def same(a, b):
    """Same dtype, shape and bytes (exact for every dtype, NaNs and float8 included)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(raw(a), raw(b))


def main():
    fgstp = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "target", "debug", "fgstp")
    fixtures = sorted(f for f in os.listdir(FIXTURES)
                      if f.endswith((".pth", ".pt")) and os.path.exists(
                          os.path.join(FIXTURES, f + ".expected.safetensors")))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in fixtures:
            expected = load_file(os.path.join(FIXTURES, name + ".expected.safetensors"))
            for ext in ("pth", "safetensors"):
                out = os.path.join(tmp, f"{name}.{ext}")
                subprocess.run([fgstp, "weights", "convert", os.path.join(FIXTURES, name), out],
                               check=True, stdout=subprocess.DEVNULL)
                got = (torch.load(out, weights_only=True) if ext == "pth" else load_file(out))
                bad = [k for k in expected if k not in got or not same(got[k], expected[k])]
                extra = [k for k in got if k not in expected]
                ok = not bad and not extra
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name} -> .{ext}: {len(got)} tensors"
                      + (f", differing {bad}" if bad else "") + (f", extra {extra}" if extra else ""))
                if ext == "pth":
                    assert type(got).__name__ == "OrderedDict", type(got)
    print(f"{len(fixtures) * 2 - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
