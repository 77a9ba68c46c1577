"""Initialise an FSDP2-sharded model with weightinit: each rank fills only its shard, and the
gathered parameters equal those of one process bitwise.

    torchrun --standalone --nproc_per_node=2 docs/examples/fsdp_init.py
"""

import copy

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import weightinit.torch as wt

dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (dist.get_world_size(),))

model = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 512))
plain = copy.deepcopy(model)          # the single-process reference
for layer in model:
    if isinstance(layer, nn.Linear):
        fully_shard(layer, mesh=mesh)
fully_shard(model, mesh=mesh)         # parameters are now DTensors, Shard(0) over the ranks

wt.init_module_(model, seed=0)        # every rank fills its own rows, no communication
wt.init_module_(plain, seed=0)
for name, p in model.named_parameters():
    assert torch.equal(p.full_tensor(), dict(plain.named_parameters())[name]), name
if dist.get_rank() == 0:
    print(f"{dist.get_world_size()} ranks: every parameter bitwise equal to one process")
dist.destroy_process_group()
