"""Writes the checkpoint-reader fixtures with real `torch.save` (run: scripts/pytools THIS [OUT_DIR]).

Every `X.pth`/`X.pt` gets a companion `X.expected.safetensors`, written by the `safetensors`
package, holding the tensors our reader must produce from X (after unwrapping a `state_dict`
nesting and stripping a DataParallel `module.` prefix), as contiguous copies made by PyTorch.
The Rust tests (crates/model/tests/integration/checkpoint.rs) compare against those bit for bit.

Deterministic (seeded); the whole directory stays well under 1 MB.
"""

import collections
import json
import os
import sys
import zipfile

import torch
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "model", "tests", "fixtures", "checkpoint")


def expected(name, tensors):
    """The tensors the reader must return, as PyTorch holds them."""
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()},
              os.path.join(OUT, name + ".expected.safetensors"))


class SmallNet(torch.nn.Module):
    """A conv + BatchNorm + linear module: its state_dict is an OrderedDict with `_metadata`
    and an int64 `num_batches_tracked`, like every real checkpoint."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def big_endian_copy(src, dst):
    """Rewrites a little-endian torch.save zip as a big-endian machine would have written it:
    `byteorder` says "big" and every storage element is byte-swapped. Storage keys follow the
    order in which tensors first appear, which for one storage per tensor is the key order."""
    sd = torch.load(src, weights_only=True)
    sizes = {str(i): t.element_size() for i, t in enumerate(sd.values())}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            prefix, _, leaf = info.filename.rpartition("/")
            if leaf == "byteorder":
                data = b"big"
            elif prefix.endswith("/data"):
                n = sizes[leaf]
                data = b"".join(data[i:i + n][::-1] for i in range(0, len(data), n))
            zout.writestr(info.filename, data)


def small_net():
    net = SmallNet()
    with torch.no_grad():
        net.bn.running_mean.normal_()
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.normal_()
        net.bn.bias.normal_()
        net.bn.num_batches_tracked.fill_(7)
    return net


def pvt_v2_official_layout(widths, depths, sr_ratios, mlp_ratios, classes):
    """A tensor dict with the official PVTv2 ImageNet checkpoint's key layout (no prefix,
    `head.*` classifier), at whatever widths are given. Values are random: only keys and
    shapes matter to the loader."""
    sd = collections.OrderedDict()
    cin = 3
    for stage, (c, depth, sr, mlp) in enumerate(zip(widths, depths, sr_ratios, mlp_ratios), 1):
        k = 7 if stage == 1 else 3
        sd[f"patch_embed{stage}.proj.weight"] = torch.randn(c, cin, k, k)
        sd[f"patch_embed{stage}.proj.bias"] = torch.randn(c)
        sd[f"patch_embed{stage}.norm.weight"] = torch.randn(c)
        sd[f"patch_embed{stage}.norm.bias"] = torch.randn(c)
        hidden = c * mlp
        for j in range(depth):
            p = f"block{stage}.{j}."
            sd[p + "norm1.weight"] = torch.randn(c)
            sd[p + "norm1.bias"] = torch.randn(c)
            sd[p + "attn.q.weight"] = torch.randn(c, c)
            sd[p + "attn.q.bias"] = torch.randn(c)
            sd[p + "attn.kv.weight"] = torch.randn(2 * c, c)
            sd[p + "attn.kv.bias"] = torch.randn(2 * c)
            sd[p + "attn.proj.weight"] = torch.randn(c, c)
            sd[p + "attn.proj.bias"] = torch.randn(c)
            if sr > 1:
                sd[p + "attn.sr.weight"] = torch.randn(c, c, sr, sr)
                sd[p + "attn.sr.bias"] = torch.randn(c)
                sd[p + "attn.norm.weight"] = torch.randn(c)
                sd[p + "attn.norm.bias"] = torch.randn(c)
            sd[p + "norm2.weight"] = torch.randn(c)
            sd[p + "norm2.bias"] = torch.randn(c)
            sd[p + "mlp.fc1.weight"] = torch.randn(hidden, c)
            sd[p + "mlp.fc1.bias"] = torch.randn(hidden)
            sd[p + "mlp.dwconv.dwconv.weight"] = torch.randn(hidden, 1, 3, 3)
            sd[p + "mlp.dwconv.dwconv.bias"] = torch.randn(hidden)
            sd[p + "mlp.fc2.weight"] = torch.randn(c, hidden)
            sd[p + "mlp.fc2.bias"] = torch.randn(c)
        sd[f"norm{stage}.weight"] = torch.randn(c)
        sd[f"norm{stage}.bias"] = torch.randn(c)
        cin = c
    sd["head.weight"] = torch.randn(classes, widths[-1])
    sd["head.bias"] = torch.randn(classes)
    return sd


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(2025)

    # model.state_dict(): OrderedDict + _metadata + num_batches_tracked. (Its tensors share memory
    # with the parameters: after the optimizer step below, `sd` holds the updated values.)
    net = small_net()
    sd = net.state_dict()
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
    torch.save(sd, os.path.join(OUT, "state_dict.pth"))
    expected("state_dict.pth", sd)

    # The same as a plain dict, under a `.pt` name.
    torch.save(dict(sd), os.path.join(OUT, "plain_dict.pt"))
    expected("plain_dict.pt", sd)

    # A training checkpoint: the weights nested under `state_dict`, next to an epoch, an
    # optimizer state (with its own tensors, which must be ignored) and assorted metadata.
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    checkpoint = {
        "epoch": 3,
        "state_dict": net.state_dict(),
        "optimizer": opt.state_dict(),
        "best_jaccard": 0.625,
        "args": {"lr": 1e-4, "dataset": "GasVid", "sizes": [352, 352], "flag": True},
    }
    torch.save(checkpoint, os.path.join(OUT, "nested.pth"))
    expected("nested.pth", net.state_dict())

    # DataParallel: every key gets a `module.` prefix, which the reader strips.
    dp = torch.nn.DataParallel(net)
    assert all(k.startswith("module.") for k in dp.state_dict())
    torch.save(dp.state_dict(), os.path.join(OUT, "dataparallel.pth"))
    expected("dataparallel.pth", net.state_dict())

    # A whole pickled module (torch.save(model)): parameters and buffers inside its __dict__.
    torch.save(net, os.path.join(OUT, "whole_module.pth"))
    expected("whole_module.pth", net.state_dict())

    # One tensor per dtype (v2 storages and, for float8, the v3 untyped storage), plus a
    # 0-d scalar and an empty tensor.
    dtypes = collections.OrderedDict()
    dtypes["f32"] = torch.randn(2, 3)
    dtypes["f16"] = torch.randn(3, 2).half()
    dtypes["bf16"] = torch.randn(5).bfloat16()
    dtypes["f64"] = torch.randn(2, 2).double()
    dtypes["i64"] = torch.tensor([-(2 ** 40), -1, 0, 1, 2 ** 40])
    dtypes["i32"] = torch.tensor([[-7, 8], [2 ** 30, -(2 ** 30)]], dtype=torch.int32)
    dtypes["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    dtypes["i8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    dtypes["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    dtypes["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    dtypes["f8_e4m3"] = torch.randn(4).to(torch.float8_e4m3fn)
    dtypes["scalar"] = torch.tensor(3.5)
    dtypes["empty"] = torch.zeros(0, 4)
    torch.save(dtypes, os.path.join(OUT, "dtypes.pth"))
    expected("dtypes.pth", dtypes)

    # Views: a transposed (non-contiguous) tensor, slices at an offset, a strided slice and
    # a broadcast (stride 0) tensor, several sharing one storage with the base.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = collections.OrderedDict()
    views["base"] = base
    views["transposed"] = base.t()
    views["rows"] = base[1:3]
    views["cols"] = base[:, 2:5]
    views["strided"] = base[::2, ::3]
    views["broadcast"] = torch.arange(3.0).expand(4, 3)
    views["tail"] = base.view(-1)[20:]
    torch.save(views, os.path.join(OUT, "views.pth"))
    expected("views.pth", views)
    storages = {v.untyped_storage().data_ptr() for v in views.values()}
    assert len(storages) == 2, "views must share the base's storage"

    # The official PVTv2 ImageNet layout: b0's depths, sr and mlp ratios, 1/16 of its widths.
    pvt = pvt_v2_official_layout([2, 4, 10, 16], [2, 2, 2, 2], [8, 4, 2, 1], [8, 8, 4, 4], 5)
    torch.save(pvt, os.path.join(OUT, "pvt_v2_official_tiny.pth"))
    expected("pvt_v2_official_tiny.pth", pvt)

    # Pickle protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL) instead of torch's 2.
    torch.save(sd, os.path.join(OUT, "protocol4.pth"), pickle_protocol=4)
    expected("protocol4.pth", sd)

    # A big-endian file; PyTorch byte-swaps it on load, and must read the same values.
    big = os.path.join(OUT, "big_endian.pth")
    big_endian_copy(os.path.join(OUT, "state_dict.pth"), big)
    little = torch.load(os.path.join(OUT, "state_dict.pth"), weights_only=True)
    for k, v in torch.load(big, weights_only=True).items():
        assert torch.equal(v, little[k]), k
    expected("big_endian.pth", little)

    # The pre-1.6 (non-zip) torch.save format.
    torch.save(sd, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)
    expected("legacy.pth", sd)

    # uint16 (a v3 dtype) has no tch kind: reading it must fail with a message naming it.
    torch.save({"weight": torch.tensor([1, 2, 65535], dtype=torch.uint16)}, os.path.join(OUT, "uint16.pth"))

    sizes = {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))}
    print(json.dumps(sizes, indent=1))
    total = sum(sizes.values())
    print(f"total {total} bytes")
    assert total < 1_000_000


if __name__ == "__main__":
    main()
