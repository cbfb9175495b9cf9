"""FLOPs of the reference FGSTP forward as PyTorch's own counter sees them, for checking
`fgstp bench`'s analytic count (crates/model/src/models/complexity.rs).

Usage: scripts/pytools scripts/reference/count_reference_flops.py REF_CHECKOUT [b0:256 b5:352 ...]
Prints one JSON object: {"<variant>_<size>": FLOPs of one forward of a batch of 1, ...}.
torch.utils.flop_counter counts matrix products and convolutions, FLOPs = 2 × MACs.
"""
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_model_fixture import build_reference  # noqa: E402

ref = sys.argv[1]
out = {}
for spec in sys.argv[2:] or ["b0:256"]:
    variant, size = spec.split(":")
    size = int(size)
    model = build_reference(ref, variant).eval()
    frames = [torch.randn(1, 3, size, size) for _ in range(3)]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(frames)
    out[f"{variant}_{size}"] = counter.get_total_flops()
print(json.dumps(out))
