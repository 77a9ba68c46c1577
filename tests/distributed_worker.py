"""Run under torchrun (gloo, CPU): every case initialises sharded tensors with
weightinit.torch and compares the gathered global tensor bitwise with the single-process result.

    python -m torch.distributed.run --standalone --nproc_per_node=N tests/distributed_worker.py OUT

Rank 0 writes a JSON list of {"case", "ok", "detail"} to OUT. Cases that need a 2 x 2 mesh run
only with 4 processes. The single-process references are computed on every rank (they are
small), so no rank waits for another except in the collectives the cases themselves use.
"""

import copy
import json
import os
import sys
import traceback

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, empty
from torch.distributed.tensor.placement_types import _StridedShard

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

import weightinit.torch as wt  # noqa: E402

RESULTS = []


def case(name):
    def wrap(fn):
        try:
            detail = fn()
            ok = detail is None
        except Exception:  # noqa: BLE001 - reported to the test
            ok, detail = False, traceback.format_exc()[-1500:]
        RESULTS.append({"case": name, "ok": ok, "detail": detail})
        return fn
    return wrap


def same(gathered, reference, what):
    if gathered.dtype != reference.dtype or gathered.shape != reference.shape:
        return f"{what}: {gathered.dtype}{tuple(gathered.shape)} vs {reference.dtype}{tuple(reference.shape)}"
    if not torch.equal(gathered.view(-1).view(torch.uint8) if gathered.dtype.itemsize == 1 else
                       gathered, reference):
        diff = (gathered.double() - reference.double()).abs().max().item()
        return f"{what}: not bitwise equal (max |diff| {diff})"
    return None


def check_tensor(mesh, placements, shape, scheme, dtype=torch.float32, **params):
    dt = empty(shape, dtype=dtype, device_mesh=mesh, placements=placements)
    wt.init_(dt, scheme, seed=1234, **params)
    ref = wt.init_(torch.empty(shape, dtype=dtype), scheme, seed=1234, **params)
    return same(dt.full_tensor(), ref, f"{scheme} {shape} {placements}")


def first_failure(*details):
    return next((d for d in details if d is not None), None)


def gathered_state(model):
    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach()
            for k, v in model.state_dict().items()}


def compare_models(sharded, plain):
    got, want = gathered_state(sharded), plain.state_dict()
    assert set(got) == set(want), (sorted(got), sorted(want))
    return first_failure(*(same(got[k], want[k], k) for k in want))


def main(out):
    dist.init_process_group("gloo")
    world = dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))

    @case(f"shard0/shard1/replicate, uneven, world {world}")
    def _():
        return first_failure(*(
            check_tensor(mesh, [p], shape, scheme)
            for p in (Shard(0), Shard(1), Replicate())
            for shape in ((37, 23), (5, 3), (1, 9))  # uneven; empty shards on some ranks
            for scheme in ("he_normal", "glorot_uniform", "truncated_normal", "orthogonal")))

    @case(f"conv kernel, bf16 and float64, world {world}")
    def _():
        return first_failure(
            check_tensor(mesh, [Shard(1)], (8, 6, 3, 3), "he_uniform"),
            check_tensor(mesh, [Shard(2)], (8, 6, 3, 3), "dirac"),
            check_tensor(mesh, [Shard(0)], (33, 17), "lecun_normal", dtype=torch.bfloat16),
            check_tensor(mesh, [Shard(0)], (33, 17), "normal", dtype=torch.float64, std=0.02))

    @case(f"partial placement refused, world {world}")
    def _():
        dt = empty((8, 8), device_mesh=mesh, placements=[Partial()])
        try:
            wt.init_(dt, "he_normal", seed=0)
        except ValueError as e:
            return None if "Partial" in str(e) else f"message: {e}"
        return "no error for a Partial placement"

    @case(f"seed required for a DTensor, world {world}")
    def _():
        dt = empty((8, 8), device_mesh=mesh, placements=[Shard(0)])
        try:
            wt.init_(dt, "he_normal")
        except ValueError as e:
            return None if "seed" in str(e) else f"message: {e}"
        return "no error for seed=None"

    @case(f"FSDP2 fully_shard Llama-like, world {world}")
    def _():
        from torch.distributed.fsdp import fully_shard

        model = models.llama(dim=32, hidden=40, vocab=50)  # 40 and 50: uneven over 4 ranks
        plain = copy.deepcopy(model)
        for layer in model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        wt.init_module_(model, seed=7)
        wt.init_module_(plain, seed=7)
        return compare_models(model, plain)

    @case(f"FSDP2 fully_shard nn.Transformer, world {world}")
    def _():
        from torch.distributed.fsdp import fully_shard

        torch.manual_seed(0)
        model = torch.nn.Transformer(d_model=16, nhead=2, num_encoder_layers=2,
                                     num_decoder_layers=1, dim_feedforward=24, dropout=0.0)
        plain = copy.deepcopy(model)
        fully_shard(model, mesh=mesh)
        wt.init_module_(model, seed=3)
        wt.init_module_(plain, seed=3)
        return compare_models(model, plain)

    def trains(model, vocab):
        """One forward and backward pass works and gives finite gradients."""
        tokens = torch.arange(12).reshape(2, 6) % vocab
        model(tokens).float().pow(2).mean().backward()
        bad = [k for k, v in model.named_parameters() if v.grad is None
               or not torch.isfinite(v.grad.full_tensor() if isinstance(v.grad, DTensor)
                                     else v.grad).all()]
        return f"no or non-finite gradients for {bad}" if bad else None

    def local_share(model):
        """Largest local/global element ratio of any parameter: about 1/world when sharded."""
        return max(v.to_local().numel() / v.numel() for v in model.parameters()
                   if isinstance(v, DTensor) and v.numel())

    @case(f"materialize_ from meta under FSDP2, Llama-like and recipe, world {world}")
    def _():
        from torch.distributed.fsdp import fully_shard

        failures = []
        for kw in ({}, {"recipe": "olmo_full_megatron"}):
            plain = wt.init_module_(models.llama(dim=32, hidden=40, vocab=50), seed=5, **kw)
            with torch.device("meta"):
                model = models.Llama(dim=32, hidden=40, vocab=50)
            for layer in model.layers:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)
            wt.materialize_(model, "cpu", seed=5, **kw)
            share = local_share(model)
            if share > 1.0 / world + 0.1:
                failures.append(f"{kw}: a rank holds {share:.2f} of a parameter")
            failures += [compare_models(model, plain), trains(model, 50)]
        return first_failure(*failures)

    @case(f"materialize_ from meta: nn.Transformer under FSDP2, world {world}")
    def _():
        from torch.distributed.fsdp import fully_shard

        def build():
            return torch.nn.Transformer(d_model=16, nhead=2, num_encoder_layers=2,
                                        num_decoder_layers=1, dim_feedforward=24, dropout=0.0)

        plain = wt.init_module_(build(), seed=2)
        with torch.device("meta"):
            model = build()
        for layer in list(model.encoder.layers) + list(model.decoder.layers):
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        wt.materialize_(model, seed=2)
        x = torch.ones(5, 2, 16)
        model(x, x).sum().backward()
        return compare_models(model, plain)

    @case(f"row blocks of sharded parameters: LSTM gates, padding row, world {world}")
    def _():
        from torch.distributed.fsdp import fully_shard

        def build():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Embedding(11, 6, padding_idx=3),
                                       torch.nn.LSTM(6, 5))  # 4 gate blocks of 5 rows

        plain = wt.init_module_(build(), seed=4)
        model = build()
        fully_shard(model, mesh=mesh)  # 20 and 11 rows: blocks straddle the shards
        wt.init_module_(model, seed=4)
        with torch.device("meta"):
            meta = build()
        fully_shard(meta, mesh=mesh)
        wt.materialize_(meta, seed=4)
        return first_failure(compare_models(model, plain), compare_models(meta, plain))

    if world == 4:
        mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))

        def tp_and_fsdp(model):
            """torchtitan's plan: attention and MLP tensor parallel over "tp", FSDP2 over "dp"."""
            from torch.distributed.fsdp import fully_shard
            from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                                           parallelize_module)

            plan = {"attention.wq": ColwiseParallel(), "attention.wk": ColwiseParallel(),
                    "attention.wv": ColwiseParallel(), "attention.wo": RowwiseParallel(),
                    "feed_forward.w1": ColwiseParallel(), "feed_forward.w3": ColwiseParallel(),
                    "feed_forward.w2": RowwiseParallel()}
            for layer in model.layers:
                parallelize_module(layer, mesh2["tp"], plan)
                fully_shard(layer, mesh=mesh2["dp"])
            fully_shard(model, mesh=mesh2["dp"])

        @case("2-D mesh placements, strided shards")
        def _():
            return first_failure(*(
                check_tensor(mesh2, p, shape, scheme)
                for p in ([Shard(0), Shard(1)], [Shard(0), Shard(0)], [Replicate(), Shard(1)],
                          [Shard(1), Replicate()], [_StridedShard(0, split_factor=2), Shard(0)],
                          [_StridedShard(1, split_factor=2), Shard(1)])
                for shape in ((16, 12), (11, 13))
                for scheme in ("he_normal", "uniform")))

        @case("FSDP2 x TP (2-D mesh) Llama-like")
        def _():
            model = models.llama(dim=32, hidden=48, vocab=64)
            plain = copy.deepcopy(model)
            tp_and_fsdp(model)
            strided = [k for k, v in model.named_parameters()
                       if any(isinstance(p, _StridedShard) for p in v.placements)]
            if not strided:
                return "expected strided shards from FSDP2 over TP, found none"
            wt.init_module_(model, seed=11)
            wt.init_module_(plain, seed=11)
            return compare_models(model, plain)

        @case("materialize_ from meta under FSDP2 x TP (2-D mesh), Llama-like")
        def _():
            plain = wt.init_module_(models.llama(dim=32, hidden=48, vocab=64), seed=13)
            with torch.device("meta"):
                model = models.Llama(dim=32, hidden=48, vocab=64)
            tp_and_fsdp(model)
            wt.materialize_(model, seed=13)
            return first_failure(compare_models(model, plain), trains(model, 64))

    if dist.get_rank() == 0:
        with open(out + ".part", "w") as f:
            json.dump(RESULTS, f, indent=1)
        os.replace(out + ".part", out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
    # The results are written and the process group is destroyed. About one run in 30 (2 ranks,
    # gloo, PyTorch 2.13) a rank then aborts in the interpreter's teardown ("terminate called
    # without an active exception": a C++ thread of the distributed runtime destroyed while
    # still joinable, after every case passed; plain PyTorch without weightinit does the same).
    # Leave without that teardown: nothing of ours remains to run, and a failure of a case is
    # reported through the results file.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
