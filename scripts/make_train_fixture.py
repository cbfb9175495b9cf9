"""Golden values for the training pieces (structure loss, clip by value, Adam, step lr),
produced by running the reference's own functions from a checkout of GeekEagle/FGSTP.

Usage: scripts/pytools scripts/make_train_fixture.py REF_CHECKOUT [OUT.safetensors]
Writes crates/cli/tests/fixtures/train_golden.safetensors by default.
"""
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

ref = Path(sys.argv[1]).resolve()
out = Path(sys.argv[2]) if len(sys.argv) > 2 else (
    Path(__file__).resolve().parent.parent / "crates/cli/tests/fixtures/train_golden.safetensors")

# train.py imports logging/plotting packages we neither have nor need: stub them.
for name in ["wandb", "tensorboardX", "thop", "cv2"]:
    stub = types.ModuleType(name)
    stub.SummaryWriter = stub.profile = stub.clever_format = object
    sys.modules[name] = stub
sys.path.insert(0, str(ref))
sys.path.insert(0, str(ref / "dataloaders"))
# The model module fails to construct as published, but importing it is fine.
import train as reference  # noqa: E402
from utils.utils import clip_gradient, adjust_lr  # noqa: E402

torch.manual_seed(2025)
golden = {}

# Structure loss: logits and a blobby mask, batch 2, non-square, plus an all-zero mask.
pred = torch.randn(3, 1, 40, 56) * 3
mask = (torch.nn.functional.avg_pool2d(torch.rand(3, 1, 40, 56), 9, 1, 4) > 0.5).float()
mask[2].zero_()
golden["loss.pred"] = pred
golden["loss.mask"] = mask
golden["loss.value"] = reference.structure_loss(pred, mask).reshape(1)
pred_g = pred.clone().requires_grad_(True)
reference.structure_loss(pred_g, mask).backward()
golden["loss.grad"] = pred_g.grad

# Adam (the reference's optimiser) with the reference's clip-by-value and step lr,
# three steps with given gradients, lr decayed before step 3 (epoch 2, decay every 2).
w = torch.nn.Parameter(torch.randn(5, 7))
b = torch.nn.Parameter(torch.randn(7))
golden["adam.w0"] = w.detach().clone()
golden["adam.b0"] = b.detach().clone()
opt = torch.optim.Adam([w, b], lr=1e-2)
for step, epoch in enumerate([1, 1, 2]):
    lr = adjust_lr(opt, 1e-2, epoch, decay_rate=0.1, decay_epoch=2)
    gw, gb = torch.randn(5, 7), torch.randn(7) * 0.3
    golden[f"adam.grad_w{step}"], golden[f"adam.grad_b{step}"] = gw, gb
    golden[f"adam.lr{step}"] = torch.tensor([lr], dtype=torch.float64)
    w.grad, b.grad = gw.clone(), gb.clone()
    clip_gradient(opt, 0.5)
    opt.step()
    golden[f"adam.w{step + 1}"] = w.detach().clone()
    golden[f"adam.b{step + 1}"] = b.detach().clone()
state = opt.state[w]
golden["adam.exp_avg_w"] = state["exp_avg"]
golden["adam.exp_avg_sq_w"] = state["exp_avg_sq"]

save_file({k: v.contiguous() for k, v in golden.items()}, str(out))
print(f"wrote {out} ({len(golden)} tensors); loss = {golden['loss.value'].item():.8f}")
