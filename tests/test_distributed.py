"""DTensor and FSDP2 on the real torch.distributed engine (gloo, CPU): 1, 2 and 4 processes
under torchrun, each rank filling only its shard; the gathered tensors are compared bitwise
with the single-process tensors (tests/distributed_worker.py holds the cases)."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
import torch.distributed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEARDOWN_ABORT = "terminate called without an active exception"
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="this PyTorch build has no torch.distributed")


@pytest.fixture(scope="module", params=[1, 2, 4], ids=lambda n: f"world{n}")
def results(request, tmp_path_factory):
    n = request.param
    out = tmp_path_factory.mktemp(f"world{n}") / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
         os.path.join(HERE, "distributed_worker.py"), str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return n, json.loads(out.read_text())


def test_every_case_is_bitwise_equal_to_one_process(results):
    n, cases = results
    expected = 9 + (3 if n == 4 else 0)
    assert len(cases) == expected, [c["case"] for c in cases]
    failed = [f"{c['case']}: {c['detail']}" for c in cases if not c["ok"]]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("example", ["fsdp_init.py", "meta_init.py"])
def test_documented_torchrun_examples_run(example):
    script = os.path.join(HERE, "..", "docs", "examples", example)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         script], capture_output=True, text=True, env=env, timeout=600)
    assert "bitwise equal to one process" in proc.stdout, proc.stderr[-4000:]
    if proc.returncode != 0:
        # Every check passed (rank 0 prints only after its comparisons, and the gathers and the
        # backward pass are collective, so rank 1 got as far). What remains is a rank aborting
        # in the distributed runtime's teardown after destroy_process_group, about one run in
        # 30 with gloo and PyTorch 2.13 ("terminate called without an active exception"; the
        # same FSDP2 model and backward pass in plain PyTorch, without weightinit, aborts so
        # about one run in 60): the only failure accepted, and only with no Python error on
        # any rank.
        assert TEARDOWN_ABORT in proc.stderr and "Error:" not in proc.stderr.replace(
            "ChildFailedError:", ""), proc.stderr[-4000:]
