"""LSUV (Mishkin & Matas 2016): weightinit.lsuv on NumPy MLPs and weightinit.torch.lsuv_.

Expected values come from a plain NumPy re-implementation of Algorithm 1 written here, with its
own activation functions (np.maximum, np.tanh, the SELU formula), not from the library's
activation kernel.
"""

import numpy as np
import pytest

import weightinit as wi
from weightinit.lsuv import forward_variances, layer_seed

SELU_L = 1.0507009873554804934193349852946
SELU_A = 1.6732632423543772848170429916717
ACT = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "selu": lambda z: SELU_L * np.where(z > 0, z, SELU_A * np.expm1(np.minimum(z, 0.0))),
}


def reference_lsuv(weights, acts, x, tol, max_iter, biases=None):
    """Algorithm 1 of the paper without the orthonormal step, in float64."""
    h = np.asarray(x, np.float64)
    out = {"weights": [], "scales": [], "iterations": [], "variances": []}
    for k, (w, act) in enumerate(zip(weights, acts)):
        w = np.array(w, np.float64)
        b = 0.0 if biases is None else biases[k]
        scale, it = 1.0, 0
        var = (h @ w + b).var()
        while abs(var - 1) >= tol and it < max_iter:
            w = w / np.sqrt(var)
            scale /= np.sqrt(var)
            it += 1
            var = (h @ w + b).var()
        for key, v in zip(out, (w, scale, it, var)):
            out[key].append(v)
        h = ACT[act](h @ w + b)
    return out


def batch(samples=256, features=32, seed=1):
    return np.random.default_rng(seed).standard_normal((samples, features))


@pytest.mark.parametrize("act", ["relu", "tanh", "selu"])
def test_every_layer_of_a_deep_mlp_ends_within_tol(act):
    x = batch(512, 64)
    depth = 20
    r = wi.lsuv([np.empty((64, 64), np.float32)] * depth, act, x, tol=0.1, seed=3)
    assert r.converged == [True] * depth
    # Independent forward pass with the returned weights and this file's activations.
    h = x
    for k, w in enumerate(r.weights):
        assert w.dtype == np.float32 and w.shape == (64, 64)
        z = h @ w.astype(np.float64)
        assert abs(z.var() - 1.0) < 0.1, (k, z.var())
        # float32 rounding of the weights changes the variance by ~1e-7 relative.
        assert z.var() == pytest.approx(r.variances[k], rel=1e-5)
        h = ACT[act](z)
    assert len(r.scales) == len(r.iterations) == len(r.layers) == depth


def test_orthonormal_pre_initialisation_and_its_seeds():
    x = batch(128, 48)
    r = wi.lsuv([np.empty((48, 48)), np.empty((48, 24))], ["tanh", "linear"], x, seed=7)
    for k, (w, s) in enumerate(zip(r.weights, r.scales)):
        q = w / s
        # Orthonormal columns (in >= out), checked directly.
        np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-12)
        np.testing.assert_allclose(  # w = q * s and back: a rounding step each way
            q, wi.orthogonal(q.shape, layout="keras", seed=layer_seed(7, k), dtype=np.float64),
            rtol=1e-13, atol=1e-16)
    # layer_seed is the documented SeedSequence recipe.
    words = np.random.SeedSequence([7, 1]).generate_state(2, np.uint32)
    assert layer_seed(7, 1) == int(words[0]) + (int(words[1]) << 32)


@pytest.mark.parametrize("act", ["relu", "tanh", "selu"])
def test_scales_and_iterations_match_the_reference(act):
    rng = np.random.default_rng(5)
    ws = [rng.standard_normal((32, 40)) * 0.3, rng.standard_normal((40, 40)) * 0.05,
          rng.standard_normal((40, 8)) * 2.0]
    x = batch(200, 32)
    r = wi.lsuv(ws, act, x, orthonormal=False)
    ref = reference_lsuv(ws, [act] * 3, x, 0.1, 10)
    np.testing.assert_allclose(r.scales, ref["scales"], rtol=1e-10)
    assert r.iterations == ref["iterations"]
    np.testing.assert_allclose(r.variances, ref["variances"], rtol=1e-10)
    for got, want in zip(r.weights, ref["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # Without a bias one step is exact: 1 iteration, unless already within tol.
    assert all(i == 1 for i in r.iterations)
    # The first factor is 1/std of x @ W, computed directly.
    assert r.scales[0] == pytest.approx(1.0 / (x @ ws[0]).std(), rel=1e-12)
    for w0, w, s in zip(ws, r.weights, r.scales):  # inputs untouched, outputs = scale * input
        np.testing.assert_allclose(w, s * w0, rtol=1e-12)


def test_a_layer_already_at_unit_variance_takes_no_step():
    x = batch(4000, 16)
    q = wi.orthogonal((16, 16), layout="keras", seed=0, dtype=np.float64)
    # x @ Q has the variance of x (Q orthogonal): 1 up to sampling, |var - 1| ~ 0.01 < 0.1.
    r = wi.lsuv([q], "linear", x, orthonormal=False)
    assert r.iterations == [0] and r.scales == [1.0]
    np.testing.assert_array_equal(r.weights[0], q)


def test_biases_need_more_steps_and_can_make_the_target_unreachable():
    x = batch(300, 20)
    rng = np.random.default_rng(2)
    w = rng.standard_normal((20, 30))
    b = rng.standard_normal(30) * 0.5
    r = wi.lsuv([w], "relu", x, tol=1e-3, orthonormal=False, biases=[b])
    ref = reference_lsuv([w], ["relu"], x, 1e-3, 10, biases=[b])
    assert r.iterations == ref["iterations"] and r.iterations[0] > 1
    np.testing.assert_allclose(r.scales, ref["scales"], rtol=1e-10)
    assert r.converged == [True]
    # A bias that alone varies by more than 1 + tol: no rescaling of W reaches the band.
    big = np.linspace(-3.0, 3.0, 30)  # variance 3.2
    r = wi.lsuv([w], "relu", x, tol=0.1, max_iter=7, orthonormal=False, biases=[big])
    assert r.iterations == [7] and r.converged == [False]
    # Var(h W f + b) -> Var(b) = 3.2 as the factor f shrinks: the band [0.9, 1.1] is unreachable.
    assert r.variances[0] > 1.1


def test_forward_variances_on_a_held_out_batch_are_near_one():
    x, x2 = batch(1024, 64, seed=1), batch(1024, 64, seed=2)
    r = wi.lsuv([np.empty((64, 64))] * 10, "tanh", x)
    v = forward_variances(r.weights, "tanh", x2)
    np.testing.assert_allclose(forward_variances(r.weights, "tanh", x), r.variances, rtol=1e-9)
    # Fresh data: each layer's variance is a mean of 1024 * 64 squares, relative sd
    # sqrt(2 / 65536) = 0.0055 for independent entries; the 10 calibration errors add like a
    # random walk, sd sqrt(10) * 0.0055 = 0.017 per layer at most: 0.1 is about 6 sd.
    assert np.all(np.abs(v - 1) < 0.1)


def test_dtype_and_inputs_are_preserved():
    x = batch(64, 8)
    ws = [np.ones((8, 4), np.float32), np.ones((4, 2), np.float64)]
    copies = [w.copy() for w in ws]
    r = wi.lsuv(ws, ["relu", "linear"], x, orthonormal=False)
    assert [w.dtype for w in r.weights] == [np.float32, np.float64]
    for w, c in zip(ws, copies):
        np.testing.assert_array_equal(w, c)
    assert r.layers == [0, 1]
    assert "scale=" in repr(r)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(weights=np.ones((8, 4))), TypeError, "list of 2-D arrays"),
    (dict(weights=[]), ValueError, "at least one layer"),
    (dict(weights=[np.ones(8)]), ValueError, r"weights\[0\]"),
    (dict(weights=[np.ones((8, 4)), np.ones((5, 2))]), ValueError, r"weights\[1\]"),
    (dict(activations=["relu"]), ValueError, "one per layer"),
    (dict(activations="swish2"), ValueError, "activations"),
    (dict(x=np.ones((10, 7))), ValueError, "features"),
    (dict(x=np.ones(8)), ValueError, "2-D"),
    (dict(x=np.full((10, 8), np.nan)), ValueError, "NaN"),
    (dict(tol=0.0), ValueError, "tol"),
    (dict(tol="0.1"), TypeError, "tol"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(biases=[np.ones(3), None]), ValueError, r"biases\[0\]"),
    (dict(x=np.zeros((10, 8))), ValueError, "variance 0"),
])
def test_bad_input(kwargs, exc, match):
    args = dict(weights=[np.ones((8, 4)), np.ones((4, 2))], activations=["relu", "linear"],
                x=batch(10, 8))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        wi.lsuv(args.pop("weights"), args.pop("activations"), args.pop("x"), **args)


def test_dead_relu_layer_is_reported():
    # All-negative pre-activations: ReLU outputs are all 0, the next layer has nothing to scale.
    x = np.abs(batch(50, 4)) + 1.0
    with pytest.raises(ValueError, match="layer 1.*variance 0"):
        wi.lsuv([-np.ones((4, 3)), np.ones((3, 2))], "relu", x, orthonormal=False)


# ----------------------------------------------------------------------------- PyTorch
def _mlp(torch, sizes, acts, bias):
    mods = []
    for (a, b), act in zip(zip(sizes[:-1], sizes[1:]), acts):
        mods += [torch.nn.Linear(a, b, bias=bias),
                 {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "selu": torch.nn.SELU,
                  "linear": torch.nn.Identity}[act]()]
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("bias", [False, True])
def test_torch_lsuv_equals_numpy_lsuv(bias):
    torch = pytest.importorskip("torch")
    import weightinit.torch as wt

    torch.manual_seed(0)
    acts = ["relu", "tanh", "selu", "linear"]
    net = _mlp(torch, [24, 32, 32, 16, 8], acts, bias).double()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    ws = [m.weight.detach().numpy().T.copy() for m in linears]
    bs = [m.bias.detach().numpy().copy() for m in linears] if bias else None
    x = np.random.default_rng(3).standard_normal((128, 24))
    ref = wi.lsuv(ws, acts, x, tol=0.01, orthonormal=False, biases=bs)
    got = wt.lsuv_(net, torch.from_numpy(x), tol=0.01, orthonormal=False)
    assert got.layers == ["0", "2", "4", "6"]
    assert got.iterations == ref.iterations
    np.testing.assert_allclose(got.scales, ref.scales, rtol=1e-9)
    np.testing.assert_allclose(got.variances, ref.variances, rtol=1e-9)
    for p, lin, w in zip(got.weights, linears, ref.weights):
        assert p is lin.weight
        np.testing.assert_allclose(p.detach().numpy().T, w, rtol=1e-9)


def test_torch_lsuv_orthonormal_uses_named_seeds_and_converges_on_convolutions():
    torch = pytest.importorskip("torch")
    import weightinit.torch as wt

    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Conv2d(16, 16, 3, stride=2), torch.nn.Tanh(),
        torch.nn.ConvTranspose2d(16, 8, 4, stride=2), torch.nn.SELU(), torch.nn.Flatten(),
        torch.nn.LazyLinear(10))
    x = torch.randn(32, 3, 12, 12)
    net(x)
    net.train()
    r = wt.lsuv_(net, x, seed=5)
    assert r.layers == ["0", "3", "5", "8"] and r.converged == [True] * 4
    assert all(m.training for m in net.modules())  # flags restored
    outs = {}
    hooks = [net[int(n)].register_forward_hook(
        lambda m, i, o, n=n: outs.__setitem__(n, o.double().var(correction=0).item()))
        for n in r.layers]
    net.eval()
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for n, v in zip(r.layers, r.variances):
        assert abs(outs[n] - 1) < 0.1 and outs[n] == pytest.approx(v, rel=1e-6)
    # The pre-initialisation is weightinit.orthogonal under the parameter's own seed.
    for n, s in zip(r.layers, r.scales):
        w = net[int(n)].weight.detach().double().numpy() / s
        q = wi.orthogonal(w.shape, layout="torch", seed=wt.parameter_seed(5, f"{n}.weight"))
        np.testing.assert_allclose(w, q, rtol=1e-5, atol=1e-6)


def test_torch_lsuv_errors():
    torch = pytest.importorskip("torch")
    import weightinit.torch as wt

    class Skips(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Linear(4, 4)
            self.unused = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="'unused' was not called"):
        wt.lsuv_(Skips(), torch.randn(8, 4))
    with pytest.raises(ValueError, match="no Linear"):
        wt.lsuv_(torch.nn.ReLU(), torch.randn(8, 4))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        wt.lsuv_(np.ones(3), torch.randn(8, 4))
    with pytest.raises(ValueError, match="tol"):
        wt.lsuv_(torch.nn.Linear(4, 4), torch.randn(8, 4), tol=-1)
    with pytest.raises(ValueError, match="variance 0"):
        wt.lsuv_(torch.nn.Linear(4, 4, bias=False), torch.zeros(8, 4))
