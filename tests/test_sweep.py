"""Distributed (sigma_w, sigma_b) sweeps: weightinit.sweep and ``weightinit sweep``.

The grid points run on a dask.distributed LocalCluster of 2 single-threaded worker processes.
Expected values come from simulate() called directly in this process, from mean-field theory
(weightinit.theory, tested against closed forms in test_theory.py) within tolerances derived
below, and from synthetic inputs with known answers.
"""

import importlib.util
import logging
import math
import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")

import weightinit as W  # noqa: E402
import weightinit.dask as WD  # noqa: E402
from weightinit import sweep as SW  # noqa: E402
from weightinit import theory as T  # noqa: E402
from conftest import run_cli  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                               reason="matplotlib (the 'plot' extra) is not installed")


@pytest.fixture(scope="module")
def client():
    environ = dict(os.environ)  # distributed's nanny sets *_NUM_THREADS=1 here for its workers
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as c:
            yield c
    finally:
        os.environ.clear()
        os.environ.update(environ)


run = run_cli


# ----------------------------------------------------------------------------- library
def test_tiny_grid_matches_direct_simulation(client):
    seen = []
    sws, sbs = [0.7, 1.3, 2.0], [0.0, 0.2]  # 3 columns x 2 rows: orientation is checked
    r = SW.sweep("tanh", sws, sbs, depth=8, width=32, samples=16, seed=3, client=client,
                 progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 6) for k in range(1, 7)]
    assert r.chi1_sim.shape == (2, 3) and r.q.shape == (2, 3, 8) and r.workers == 2
    np.testing.assert_array_equal(r.sigma_w, sws)
    np.testing.assert_array_equal(r.sigma_b, sbs)
    for i, sb in enumerate(sbs):
        for j, sw in enumerate(sws):
            d = W.simulate(8, 32, activation="tanh", std=sw / math.sqrt(32), bias_std=sb,
                           samples=16, seed=3, backward=True, bins=1)
            # Same seeds and kernels (bitwise identical for any Numba thread count); only BLAS
            # may sum in another order with another thread count, a relative 1e-7 per layer.
            np.testing.assert_allclose(r.q[i, j], d.q, rtol=1e-5)
            np.testing.assert_allclose(r.grad_var[i, j], d.grad_var, rtol=1e-5)
            assert r.q_sim[i, j] == r.q[i, j, -1]
            assert (r.chi1_sim[i, j], r.chi1_layers[i, j]) == SW.chi1_from_grad_var(
                r.grad_var[i, j])
            assert r.chi1_theory[i, j] == T.chi1("tanh", sw, sb)
            assert r.q_star[i, j] == T.fixed_point("tanh", sw, sb)
            assert r.q_theory[i, j] == T.propagate("tanh", sw, sb, d.input_var, 8)[-1]
            assert r.seconds[i, j] > 0 and r.nonfinite[i, j] == 0
    assert r.wall > 0


def test_chi1_agrees_with_mean_field(client):
    # Width 512, depth 32, 128 samples, biases of std 0.3 (so q* > 0 and the forward pass settles
    # within a few layers), points in the ordered phase, near the edge of chaos and chaotic.
    width, depth = 512, 32
    sws, sb = np.array([0.8, 1.5, 2.5]), 0.3
    r = SW.sweep("tanh", sws, [sb], depth=depth, width=width, samples=128, seed=1,
                 client=client)
    for j, sw in enumerate(sws):
        g = r.grad_var[0, j]
        k = np.arange(depth // 4, depth)
        logs = np.log(g[k - 1]) - np.log(g[k])  # per-layer log growth: independent weights
        assert r.chi1_layers[0, j] == len(k)
        # The estimate is exp(mean(logs)); its standard error is sd(logs)/sqrt(n) (each layer
        # draws fresh weights, so the ratios are nearly independent). Mean-field theory is the
        # infinite-width limit; the finite-width correction is O(1/width). Allowed: 4 standard
        # errors plus 2/width.
        se = logs.std(ddof=1) / math.sqrt(len(logs))
        err = abs(math.log(r.chi1_sim[0, j] / r.chi1_theory[0, j]))
        assert err <= 4 * se + 2 / width, (sw, r.chi1_sim[0, j], r.chi1_theory[0, j], se)
        # Last layer's q: the weights of a layer change q by a relative sqrt(2/width) at most
        # (all of q in one direction of the activations); the noise of earlier layers decays by
        # rho = dq_map/dq at q* per layer, so it accumulates to 1/sqrt(1 - rho^2) times that.
        # Allowed: 4 of these standard deviations.
        q = r.q_star[0, j]
        rho = (T.q_map(q * 1.001, "tanh", sw, sb)
               - T.q_map(q * 0.999, "tanh", sw, sb)) / (0.002 * q)
        assert 0 < rho < 1
        tol = 4 * math.sqrt(2 / width) / math.sqrt(1 - rho**2)
        assert abs(r.q_sim[0, j] / r.q_theory[0, j] - 1) <= tol, (sw, r.q_sim[0, j], tol)
        assert abs(r.q_theory[0, j] / q - 1) < 1e-6  # 32 layers: at the fixed point


def test_dask_array_on_distributed_workers_is_bitwise(client):
    x = WD.he_normal((300, 200), chunks=(70, 90), seed=4)
    np.testing.assert_array_equal(client.compute(x).result(), W.he_normal((300, 200), seed=4))


def test_chi1_from_grad_var_synthetic():
    # g_k = 5 * 0.8**(-k): every layer multiplies the gradient second moment by 0.8 going down.
    g = 5 * 0.8 ** -np.arange(40.0)
    est, n = SW.chi1_from_grad_var(g)
    assert n == 30 and est == pytest.approx(0.8, rel=1e-12)
    est, n = SW.chi1_from_grad_var(g, first=1)
    assert n == 39 and est == pytest.approx(0.8, rel=1e-12)
    # values outside the float32 band are left out, pairs with them too
    g2 = 1e-40 * 10.0 ** -np.arange(40.0)  # 1e-40 .. 1e-79: from k = 11 on below 1e-50
    est, n = SW.chi1_from_grad_var(g2)
    assert n == 1 and math.isnan(est)  # only the pair (9, 10): fewer than 2 pairs
    est, n = SW.chi1_from_grad_var(g2, dtype="float64")
    assert n == 30 and est == pytest.approx(10.0, rel=1e-12)
    g3 = g.copy()
    g3[20] = np.inf
    est, n = SW.chi1_from_grad_var(g3)
    assert n == 28 and est == pytest.approx(0.8, rel=1e-12)


def _result(chi_sim, chi_theory, sws, sbs):
    shape = (len(sbs), len(sws))
    nan = np.full(shape, math.nan)
    return SW.SweepResult(
        activation="tanh", sigma_w=np.asarray(sws, float), sigma_b=np.asarray(sbs, float),
        depth=2, width=3, samples=4, seed=5, dtype="float32", slope=0.01,
        chi1_sim=np.asarray(chi_sim, float), chi1_theory=np.asarray(chi_theory, float),
        chi1_layers=np.ones(shape, np.int64), q_sim=nan, q_theory=nan, q_star=nan,
        q=np.zeros(shape + (2,)), grad_var=np.ones(shape + (2,)), nonfinite=np.zeros(shape),
        seconds=np.ones(shape), wall=1.5, workers=2)


def test_critical_sigma_w_interpolates_log_chi1():
    sws = [1.0, 2.0, 3.0]
    r = _result([[0.5, 2.0, 4.0], [0.25, 0.5, 0.9], [math.nan, 0.5, 1.0]],
                [[1.0, 1.0, 1.0]] * 3, sws, [0.0, 0.1, 0.2])
    # log 0.5 -> log 2 is symmetric about 0: the crossing is half way, at 1.5
    got = r.critical_sigma_w()
    assert got[0] == pytest.approx(1.5) and math.isnan(got[1]) and got[2] == pytest.approx(3.0)
    assert np.all(np.isnan(r.critical_sigma_w("theory")))  # 1.0 everywhere: log = 0, no a < 0
    with pytest.raises(ValueError, match="`which`"):
        r.critical_sigma_w("both")


def test_zarr_round_trip_and_existing_path(tmp_path):
    r = _result([[0.5, 2.0]], [[0.6, 1.9]], [1.0, 2.0], [0.1])
    path = tmp_path / "r.zarr"
    r.to_zarr(path)
    back = SW.SweepResult.from_zarr(path)
    for f in SW._ARRAYS:
        np.testing.assert_array_equal(getattr(back, f), getattr(r, f))
    assert back.settings() == r.settings()
    with pytest.raises(FileExistsError):
        r.to_zarr(path)
    assert sorted(os.listdir(tmp_path)) == ["r.zarr"]
    with pytest.raises(ValueError, match="not a weightinit sweep"):
        SW.SweepResult.from_zarr(_zarr_group(tmp_path / "other.zarr"))


def _zarr_group(path):
    import zarr

    zarr.open_group(str(path), mode="w")
    return path


@pytest.mark.parametrize("text, expected", [
    ("0.5:4:8", np.linspace(0.5, 4, 8)), ("1", [1.0]), ("0,0.25, 1", [0.0, 0.25, 1.0]),
    ("2:2:1", [2.0]), ("0:1:2", [0.0, 1.0])])
def test_parse_grid(text, expected):
    np.testing.assert_array_equal(SW.parse_grid(text), expected)


@pytest.mark.parametrize("text", ["", "a", "1:2", "1:2:0", "1:2:3:4", "-1", "0:-1:3", "nan",
                                  "1:inf:3", "1:2:2.5"])
def test_parse_grid_errors(text):
    with pytest.raises(ValueError, match="`grid`"):
        SW.parse_grid(text)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(activation="swish"), ValueError, "`activation`"),
    (dict(sigma_w=[-1.0]), ValueError, "`sigma_w`"),
    (dict(sigma_b=[]), ValueError, "`sigma_b`"),
    (dict(depth=0), ValueError, "`depth`"),
    (dict(width=2.5), TypeError, "`width`"),
    (dict(dtype="int8"), TypeError, "`dtype`"),
    (dict(workers=2, scheduler="tcp://127.0.0.1:1"), ValueError, "`workers`"),
    (dict(scheduler="tcp://127.0.0.1:1", client=object()), ValueError, "at most one"),
])
def test_sweep_bad_input(kw, exc, match):
    args = dict(activation="tanh", sigma_w=[1.0], sigma_b=[0.0], depth=3, width=4)
    args.update(kw)
    with pytest.raises(exc, match=match):
        SW.sweep(args.pop("activation"), args.pop("sigma_w"), args.pop("sigma_b"), **args)


# ----------------------------------------------------------------------------- command line
SMALL = ["sweep", "--sigma-w", "0.6:2.0:3", "--sigma-b", "0,0.3", "--depth", "10",
         "--width", "32", "--samples", "16"]


@needs_mpl
def test_cli_end_to_end_on_its_own_local_cluster(tmp_path):
    out, png = tmp_path / "r.zarr", tmp_path / "phase.png"
    environ = dict(os.environ)
    code, text = run(SMALL + ["--workers", "2", "--out", str(out), "--plot", str(png)])
    assert code == 0, text
    assert dict(os.environ) == environ  # the cluster's settings for its workers do not leak
    assert "# sweep: tanh, 3 sigma_w x 2 sigma_b = 6 points, 10 layers of 32 units" in text
    assert "# 2 workers:" in text and f"wrote {out}" in text and f"wrote {png}" in text
    assert png.read_bytes()[:8] == PNG
    r = SW.SweepResult.from_zarr(out)
    np.testing.assert_array_equal(r.sigma_w, np.linspace(0.6, 2.0, 3))
    np.testing.assert_array_equal(r.sigma_b, [0.0, 0.3])
    assert r.workers == 2 and r.depth == 10 and r.width == 32 and r.samples == 16
    d = W.simulate(10, 32, activation="tanh", std=1.3 / math.sqrt(32), bias_std=0.3,
                   samples=16, seed=0, backward=True, bins=1)
    np.testing.assert_allclose(r.grad_var[1, 1], d.grad_var, rtol=1e-5)  # as in the first test
    assert sorted(os.listdir(tmp_path)) == ["phase.png", "r.zarr"]


def test_cli_on_a_running_scheduler(client, tmp_path):
    out = tmp_path / "r.zarr"
    code, text = run(SMALL + ["--scheduler", client.scheduler.address, "--out", str(out),
                              "--dtype", "float64"])
    assert code == 0, text
    r = SW.SweepResult.from_zarr(out)
    assert r.dtype == "float64" and r.chi1_sim.shape == (2, 3)
    assert "edge of chaos sigma_w" in text


@needs_mpl
def test_cli_ctrl_c_shuts_the_cluster_down_and_writes_nothing(tmp_path, monkeypatch, capsys):
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(SW, "_store", interrupted)
    code, _ = run(SMALL + ["--workers", "2", "--out", str(tmp_path / "r.zarr"),
                           "--plot", str(tmp_path / "p.png")])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    gone, alive = psutil.wait_procs(left, timeout=10)
    assert alive == []  # the LocalCluster's worker processes are gone


@pytest.mark.parametrize("extra, message", [
    (["--sigma-w", "1:2"], "START:STOP:COUNT"),
    (["--activation", "swish"], "`activation`"),
    (["--plot", "p.xyz"], "unknown image format"),
])
def test_cli_bad_arguments(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    code, _ = run(SMALL + extra)
    assert code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_cli_existing_out_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    (tmp_path / "r.zarr").mkdir()
    monkeypatch.setattr(SW, "sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    code, _ = run(SMALL + ["--out", str(tmp_path / "r.zarr")])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert os.listdir(tmp_path / "r.zarr") == []


def test_cli_workers_and_scheduler_are_exclusive():
    assert run(SMALL + ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])[0] == 2


@pytest.mark.parametrize("missing", ["distributed", "zarr"])
def test_cli_missing_extra_exits_1_with_install_advice(monkeypatch, capsys, missing):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == missing else real(name, *a))
    monkeypatch.setattr(SW, "sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    assert run(SMALL)[0] == 1
    assert 'pip install "weightinit[dask]"' in capsys.readouterr().err
