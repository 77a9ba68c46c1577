"""Build a transformer on the meta device, shard it with FSDP2 and materialise it with
weightinit: each rank allocates and fills only its shards, and the gathered parameters equal
init_module_ of the same model built normally in one process, bitwise.

    torchrun --standalone --nproc_per_node=2 docs/examples/meta_init.py
"""

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import weightinit.torch as wt


def build():
    layer = nn.TransformerEncoderLayer(256, 8, 1024, dropout=0.0, activation="gelu",
                                       batch_first=True)
    return nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)


dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (dist.get_world_size(),))

with torch.device("meta"):            # no memory yet
    model = build()
for layer in model.layers:
    fully_shard(layer, mesh=mesh)
fully_shard(model, mesh=mesh)         # parameters are DTensors on meta

wt.materialize_(model, "cpu", seed=0)   # each rank: its shards, allocated and filled

plain = wt.init_module_(build(), seed=0)  # the single-process reference
for name, p in model.named_parameters():
    assert torch.equal(p.full_tensor(), dict(plain.named_parameters())[name]), name
model(torch.randn(2, 5, 256)).sum().backward()   # ready to train
if dist.get_rank() == 0:
    print(f"{dist.get_world_size()} ranks: materialised from meta, every parameter bitwise "
          "equal to one process")
dist.destroy_process_group()
