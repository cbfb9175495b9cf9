"""Golden values for the comparison systems' training pieces, produced by running their authors'
own functions from your checkouts of XuelianCheng/SLT-Net and lartpang/ZoomNeXt (nothing of them
is copied here; they are imported from the checkouts):

  SLT-Net  utils/Hybrid_Eloss.py  hybrid_e_loss           value and gradient
           utils/adamw.py         AdamW                   parameters after each step
           utils/cyclic_scheduler.py CyclicLRWithRestarts lr and weight decay of each step, driven
                                                          as train_video_long_term.py drives it
                                                          (step() before and batch_step() after
                                                          every optimiser step)
  ZoomNeXt methods/zoomnext/zoomnext.py _ZoomNeXt_Base.forward's training loss (BCE + the
                                                          uncertainty-aware term with its ramp),
                                                          through a subclass whose body returns
                                                          given logits; value and gradient
           utils/pipeline/scheduler.py Scheduler          the per-iteration learning rates of
                                                          icod_train.py's "step" and
                                                          vcod_finetune.py's "constant" modes
           get_grouped_params of PvtV2B5_ZoomNeXt and videoPvtV2B5_ZoomNeXt: which parameters
                                                          are frozen, at 0.1× and at 1×

Usage: scripts/pytools scripts/make_baseline_train_fixture.py SLTNET_CHECKOUT ZOOMNEXT_CHECKOUT [OUT_DIR]
Writes OUT_DIR/baseline_train_golden.safetensors and OUT_DIR/zoomnext_param_groups.json
(default OUT_DIR: crates/cli/tests/fixtures).

In memory only: `matplotlib` and `adjustText` (imported by ZoomNeXt's scheduler for its plot) are
stubbed, and `torch.cuda.get_device_properties` answers for a machine without a GPU (ZoomNeXt's
PVTv2 attention asks at construction).
"""
import importlib.util
import json
import os
import sys
import types
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

slt_dir = Path(sys.argv[1]).resolve()
zoom_dir = Path(sys.argv[2]).resolve()
out_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else (
    Path(__file__).resolve().parent.parent / "crates/cli/tests/fixtures")
warnings.filterwarnings("ignore")


def load_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Both checkouts have a top-level `utils`: SLT-Net's files are loaded one by one instead.
hybrid = load_file(slt_dir / "utils/Hybrid_Eloss.py", "slt_hybrid_eloss")
adamw = load_file(slt_dir / "utils/adamw.py", "slt_adamw")
cyclic = load_file(slt_dir / "utils/cyclic_scheduler.py", "slt_cyclic_scheduler")

stub = types.ModuleType("matplotlib")
stub.use = lambda *a, **k: None
stub.pyplot = types.ModuleType("matplotlib.pyplot")
sys.modules["matplotlib"] = stub
sys.modules["matplotlib.pyplot"] = stub.pyplot
adjust = types.ModuleType("adjustText")
adjust.adjust_text = lambda *a, **k: None
sys.modules["adjustText"] = adjust
torch.cuda.get_device_properties = lambda *a, **k: types.SimpleNamespace(major=0, minor=0)
sys.path.insert(0, str(zoom_dir))
from utils.pipeline.scheduler import Scheduler  # noqa: E402
import methods.zoomnext.zoomnext as zoomnext  # noqa: E402

torch.manual_seed(2022)
golden = {}


def soft_mask(b, h, w, zero_last=True):
    """Blobs with soft edges (a resized binary mask), the last one empty."""
    m = (torch.nn.functional.avg_pool2d(torch.rand(b, 1, h, w), 9, 1, 4) > 0.5).float()
    m = torch.nn.functional.avg_pool2d(m, 3, 1, 1, count_include_pad=False)
    if zero_last:
        m[-1].zero_()
    return m


# --- SLT-Net's hybrid E-loss --------------------------------------------------------------
pred = torch.randn(3, 1, 40, 56) * 3
mask = soft_mask(3, 40, 56)
golden["hybrid.pred"], golden["hybrid.mask"] = pred, mask
p = pred.clone().requires_grad_(True)
loss = hybrid.hybrid_e_loss(p, mask)
loss.backward()
golden["hybrid.value"] = loss.detach().reshape(1)
golden["hybrid.grad"] = p.grad

# --- ZoomNeXt's loss ----------------------------------------------------------------------
class GivenLogits(zoomnext._ZoomNeXt_Base):
    """The reference's training forward with the network replaced by given logits."""

    def body(self, data):
        return data["logits"]


logits = torch.randn(4, 1, 24, 32) * 2.5
zmask = (soft_mask(4, 24, 32, zero_last=False) > 0.5).float()
zmask = torch.nn.functional.avg_pool2d(zmask, 3, 1, 1, count_include_pad=False)  # soft edges
golden["zoomnext.logits"], golden["zoomnext.mask"] = logits, zmask
model = GivenLogits().train()
for i, pct in enumerate([0.0, 0.3, 1.0]):
    lg = logits.clone().requires_grad_(True)
    out = model(data={"logits": lg, "mask": zmask}, iter_percentage=pct)
    out["loss"].backward()
    golden[f"zoomnext.progress{i}"] = torch.tensor([pct], dtype=torch.float64)
    golden[f"zoomnext.value{i}"] = out["loss"].detach().reshape(1)
    golden[f"zoomnext.grad{i}"] = lg.grad

# --- SLT-Net's AdamW under CyclicLRWithRestarts, as train_video_long_term.py drives them ------
w = torch.nn.Parameter(torch.randn(5, 7))
b = torch.nn.Parameter(torch.randn(7))
golden["adamw.w0"], golden["adamw.b0"] = w.detach().clone(), b.detach().clone()
opt = adamw.AdamW([w, b], lr=1e-2, weight_decay=0.05)
sched = cyclic.CyclicLRWithRestarts(opt, 2, epoch_size=1024, restart_period=5, t_mult=1.2,
                                    policy="cosine")
steps = 14
lrs, wds = [], []
for k in range(steps):
    sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    wds.append(opt.param_groups[0]["weight_decay"])
    gw, gb = torch.randn(5, 7), torch.randn(7) * 0.3
    golden[f"adamw.grad_w{k}"], golden[f"adamw.grad_b{k}"] = gw, gb
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    sched.batch_step()
    golden[f"adamw.w{k + 1}"], golden[f"adamw.b{k + 1}"] = w.detach().clone(), b.detach().clone()
golden["cyclic.lr"] = torch.tensor(lrs, dtype=torch.float64)
golden["cyclic.weight_decay"] = torch.tensor(wds, dtype=torch.float64)
# The recipe's own values over a longer run (lr 1e-5, wd 1e-6, batch 2): 80 steps.
probe = torch.nn.Parameter(torch.zeros(1))
opt = adamw.AdamW([probe], lr=1e-5, weight_decay=1e-6)
sched = cyclic.CyclicLRWithRestarts(opt, 2, epoch_size=1024, restart_period=5, t_mult=1.2,
                                    policy="cosine")
lrs, wds = [], []
for k in range(80):
    sched.step()
    lrs.append(opt.param_groups[0]["lr"])
    wds.append(opt.param_groups[0]["weight_decay"])
    sched.batch_step()
golden["cyclic_recipe.lr"] = torch.tensor(lrs, dtype=torch.float64)
golden["cyclic_recipe.weight_decay"] = torch.tensor(wds, dtype=torch.float64)

# --- ZoomNeXt's scheduler: "step" (milestone int(2/3 of the iterations)) and "constant" --------
for mode, cfg in [("step", dict(milestones=int(30 * 2 / 3), gamma=0.1)), ("constant", dict(coef=1))]:
    two = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam([{"params": [two[0]], "lr": 0.1 * 1e-4}, {"params": [two[1]], "lr": 1e-4}],
                           lr=1e-4)
    sched = Scheduler(opt, num_iters=30, epoch_length=10,
                      scheduler_cfg=dict(warmup=dict(num_iters=0), mode=mode, cfg=cfg),
                      step_by_batch=True)
    sched.record_lrs(param_groups=opt.param_groups)
    rows = []
    for idx in range(30):
        sched.step(curr_idx=idx)
        rows.append([g["lr"] for g in opt.param_groups])
    golden[f"zoomnext_sched.{mode}"] = torch.tensor(rows, dtype=torch.float64)

out_dir.mkdir(parents=True, exist_ok=True)
path = out_dir / "baseline_train_golden.safetensors"
save_file({k: v.contiguous() for k, v in golden.items()}, str(path))

# --- ZoomNeXt's parameter groups ------------------------------------------------------------
groups = {}
for name, cls in [("image", zoomnext.PvtV2B5_ZoomNeXt), ("video", zoomnext.videoPvtV2B5_ZoomNeXt)]:
    m = cls(pretrained=False, num_frames=1 if name == "image" else 5)
    g = m.get_grouped_params()
    ids = {id(p): n for n, p in m.named_parameters()}
    groups[name] = {k: sorted(ids[id(p)] for p in v) for k, v in g.items()}
with open(out_dir / "zoomnext_param_groups.json", "w") as f:
    json.dump(groups, f, indent=0)
    f.write("\n")
print(f"wrote {path} ({len(golden)} tensors) and zoomnext_param_groups.json; "
      f"hybrid {golden['hybrid.value'].item():.8f}, zoomnext {golden['zoomnext.value1'].item():.8f}")
