"""Initialising a Llama-like model from the meta device: weightinit.torch.materialize_ against
PyTorch's own path (``to_empty`` + every module's ``reset_parameters``), time and peak memory.

    python bench/materialize_report.py [--size 1b|small] [--ranks 2] [--repeat 3]
        [--no-warm-memory]

Each measurement runs in a fresh process (peak RSS is per process), after a warm-up on a tiny
model (Numba cache load, PyTorch's first calls). Reported per run: seconds, parameters per
second, the peak RSS increase over the process's RSS before allocation divided by the
parameter bytes (what the initialisation costs beyond the parameters themselves), and the
ratio of the torch path's time to weightinit's in the same run. With ``--ranks 2`` the
weightinit path also runs under torchrun on 2 processes with FSDP2 ``fully_shard``: rank 0's
time and RSS increase (against the whole model's bytes), next to a single process with the
same threads per process as each rank has (cores / ranks), the fair time comparison on a
machine whose cores the ranks share. The generators' raw fill
speed (2**26 float32 values into a preallocated array, uniform and normal) is measured in the
same process for comparison.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {  # dim, n_layers, hidden, vocab, heads
    "1b": dict(dim=2048, n_layers=16, hidden=5632, vocab=32000, heads=16),
    "small": dict(dim=512, n_layers=4, hidden=1408, vocab=8000, heads=8),
}

WORKER = r"""
import json, os, resource, sys, time
sys.path.insert(0, {tests!r})
import numpy as np, torch
import models, weightinit as W, weightinit.torch as wt

mode, cfg, out, sharded = {mode!r}, {cfg!r}, {out!r}, {sharded!r}
def rss():  # current resident set, bytes
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
mesh = None
if sharded:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
def build(**kw):
    with torch.device("meta"):
        m = models.Llama(**kw)
    if mesh is not None:
        for layer in m.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(m, mesh=mesh)
    return m
def torch_path(m):
    m.to_empty(device="cpu")
    with torch.no_grad():
        for mod in m.modules():
            if callable(getattr(mod, "reset_parameters", None)):
                mod.reset_parameters()
    return m
run = (lambda m: wt.materialize_(m, "cpu", seed=0)) if mode == "weightinit" else torch_path
run(build(dim=64, n_layers=1, hidden=96, vocab=100, heads=4))  # warm-up: compile/cache load
m = build(**cfg)
n = sum(p.numel() for p in m.parameters())
local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() * p.element_size()
            for p in m.parameters())
before, peak0 = rss(), peak()
t = time.perf_counter()
run(m)
dt = time.perf_counter() - t
peak_after = max(peak(), peak0)
raw = {{}}
if mode == "weightinit" and not sharded:  # after the model's peak was read
    del m
    a = np.empty(1 << 26, np.float32); a.fill(0)
    for dist_ in ("uniform", "normal"):
        best = 1e9
        for _ in range(3):
            t = time.perf_counter(); W.init(a.shape, dist_, seed=1, out=a); best = min(best, time.perf_counter() - t)
        raw[dist_] = a.size / best
    del a
res = dict(mode=mode, seconds=dt, params=n, local_bytes=local, rss_before=before,
           peak_increase=peak_after - before, raw=raw)
if not sharded or torch.distributed.get_rank() == 0:
    with open(out, "w") as f:
        json.dump(res, f)
if sharded:
    torch.distributed.destroy_process_group()
"""


def run(mode, cfg, ranks=1, threads=None):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        code = WORKER.format(tests=os.path.join(HERE, "..", "tests"), mode=mode, cfg=cfg,
                             out=out, sharded=ranks > 1)
        script = os.path.join(tmp, "worker.py")
        with open(script, "w") as f:
            f.write(code)
        cmd = [sys.executable, script]
        env = dict(os.environ)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
        if ranks > 1:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={ranks}", script]
            threads = str(max(1, (os.cpu_count() or 1) // ranks))
            env.update(OMP_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads)
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def params_of(cfg):
    """Parameter count of the Llama-like model of ``cfg`` (embedding, 4 attention and 3 MLP
    matrices and 2 norms per layer, final norm, untied output)."""
    d, h, v, n = cfg["dim"], cfg["hidden"], cfg["vocab"], cfg["n_layers"]
    return 2 * v * d + n * (4 * d * d + 3 * d * h + 2 * d) + d


def warm_memory(nbytes):
    """Touch ``nbytes`` in a throw-away process, right before each measured one. On a virtual
    machine whose memory the host provides on first touch and takes back some time after the
    guest frees it (the AMD EPYC host here: a 1 GiB fill of cold memory 1.65 s, of warm memory
    0.11 s), a measurement would otherwise time the host's memory provisioning, and which path
    happened to find warm memory would decide the ratio."""
    subprocess.run([sys.executable, "-c", f"import numpy as np; np.ones({nbytes // 4}, "
                    "np.float32)"], check=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="1b")
    ap.add_argument("--ranks", type=int, default=2, help="also run weightinit on this many "
                    "processes under FSDP2 (1: skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-warm-memory", action="store_true",
                    help="skip touching twice the model's bytes in a throw-away process first")
    args = ap.parse_args(argv)
    sys.path.insert(0, HERE)
    import peers

    cpu, flags = peers.cpu()
    cfg = SIZES[args.size]
    print(f"cpu: {cpu} ({', '.join(flags) or 'no AVX2'}); {os.cpu_count()} cores; "
          f"model {args.size} {cfg}, float32")
    print(f"{'run':>4} {'params':>8} {'weightinit s':>12} {'torch s':>8} {'ratio':>6} "
          f"{'wi Mparam/s':>11} {'raw unif/norm G/s':>17} {'wi RSS+/bytes':>13} "
          f"{'torch RSS+/bytes':>16}" + (f" {'1-thread s':>10} {'rank0 s':>8} "
                                         f"{'rank0 RSS+/bytes(all)':>21}"
                                         if args.ranks > 1 else ""))
    def measure(*a, **kw):
        if not args.no_warm_memory:
            warm_memory(2 * 4 * params_of(cfg))
        return run(*a, **kw)

    for i in range(args.repeat):
        w = measure("weightinit", cfg)
        t = measure("torch", cfg)
        nbytes = w["params"] * 4
        line = (f"{i:>4} {w['params'] / 1e9:>7.3f}B {w['seconds']:>12.2f} {t['seconds']:>8.2f} "
                f"{t['seconds'] / w['seconds']:>6.2f} {w['params'] / w['seconds'] / 1e6:>11.0f} "
                f"{w['raw']['uniform'] / 1e9:>8.2f}/{w['raw']['normal'] / 1e9:<8.2f} "
                f"{w['peak_increase'] / nbytes:>13.3f} {t['peak_increase'] / nbytes:>16.3f}")
        if args.ranks > 1:
            one = measure("weightinit", cfg,
                          threads=max(1, (os.cpu_count() or 1) // args.ranks))
            r = measure("weightinit", cfg, args.ranks)
            line += (f" {one['seconds']:>10.2f} {r['seconds']:>8.2f} "
                     f"{r['peak_increase'] / nbytes:>21.3f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
