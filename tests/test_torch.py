"""PyTorch adapter: weightinit.torch.init_, init_module_, layer_fans and parameter_seed.

Reference values are weightinit.init itself (the adapter must reproduce it exactly; the schemes
are tested against independent references in test_schemes.py), PyTorch's own fan and init
functions, and direct computations (hashlib for seeds, Q^T Q = I for orthogonal blocks, exact
conditional variances for the transposed-convolution experiment).
"""

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402


def seed_of(seed, name):
    """parameter_seed, recomputed from its documented recipe."""
    d = hashlib.blake2b(name.encode(), digest_size=8, key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(d, "little")


# ----------------------------------------------------------------------------- init_
@pytest.mark.parametrize("scheme, shape, params", [
    ("he_normal", (64, 32), {}),
    ("glorot_uniform", (16, 8, 3, 3), {}),
    ("lecun_normal", (8, 4, 5), {"distribution": "truncated_normal"}),
    ("he_uniform", (10, 6), {"nonlinearity": "leaky_relu", "a": math.sqrt(5)}),
    ("orthogonal", (12, 20), {"gain": 2.0}),
    ("normal", (7,), {"std": 0.02}),
    ("zeros", (3, 3), {}),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_init_equals_weightinit_init(scheme, shape, params, dtype):
    t = torch.empty(shape, dtype=dtype)
    ptr, version = t.data_ptr(), t._version
    assert wt.init_(t, scheme, seed=11, **params) is t
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    want = wi.init(shape, scheme, seed=11, layout="torch", dtype=np_dtype, **params)
    np.testing.assert_array_equal(t.numpy(), want)
    assert t.data_ptr() == ptr and t._version > version  # filled in place, autograd notified


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_targets_are_rounded_from_float32(dtype):
    t = torch.empty(32, 48, dtype=dtype)
    wt.init_(t, "glorot_normal", seed=4)
    want = torch.from_numpy(wi.glorot_normal((32, 48), seed=4)).to(dtype)
    assert torch.equal(t, want)


def test_non_contiguous_and_parameter_tensors():
    base = torch.zeros(32, 64)
    t = base.T  # (64, 32) view, not contiguous
    wt.init_(t, "he_normal", seed=2)
    np.testing.assert_array_equal(t.numpy(), wi.he_normal((64, 32), seed=2))
    lin = nn.Linear(20, 30)
    wt.init_(lin.weight, "he_uniform", seed=3)
    assert lin.weight.requires_grad and lin.weight.is_leaf
    np.testing.assert_array_equal(lin.weight.detach().numpy(), wi.he_uniform((30, 20), seed=3))
    lin(torch.ones(2, 20)).sum().backward()  # still a working parameter
    assert lin.weight.grad.shape == (30, 20)
    cl = nn.Conv2d(4, 8, 3).to(memory_format=torch.channels_last)
    assert not cl.weight.is_contiguous()
    wt.init_(cl.weight, "lecun_normal", seed=5)
    np.testing.assert_array_equal(cl.weight.detach().numpy(), wi.lecun_normal((8, 4, 3, 3), seed=5))
    assert wt.init_(torch.empty(0, 3), "he_normal").shape == (0, 3)


def test_in_place_fill_is_seen_by_autograd_saved_tensors():
    w = torch.ones(3, 3, requires_grad=True)
    y = (w * w).sum()  # saves w for backward
    wt.init_(w, "normal", seed=0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_init_errors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        wt.init_(np.zeros((2, 2)), "zeros")
    with pytest.raises(TypeError, match="floating dtype"):
        wt.init_(torch.zeros(2, 2, dtype=torch.int32), "zeros")
    with pytest.raises(TypeError, match="floating dtype"):
        wt.init_(torch.zeros(2, 2, dtype=torch.complex64), "zeros")
    with pytest.raises(ValueError, match="meta"):
        wt.init_(torch.empty(2, 2, device="meta"), "zeros")
    with pytest.raises(TypeError, match="`dtype` is taken from `tensor`"):
        wt.init_(torch.empty(2, 2), "zeros", dtype=np.float64)
    with pytest.raises(ValueError, match="Unknown `scheme`"):
        wt.init_(torch.empty(2, 2), "kaiming")
    with pytest.raises(ValueError, match="Fans are undefined"):
        wt.init_(torch.empty(5), "he_normal")
    with pytest.raises(TypeError, match="dense"):
        wt.init_(torch.eye(3).to_sparse(), "zeros")


@pytest.mark.parametrize("shape", [(30, 20), (16, 8, 3), (16, 4, 3, 5), (8, 2, 3, 3, 3)])
def test_torch_layout_fans_are_pytorchs(shape):
    assert wi.compute_fans(shape, "torch") == nn.init._calculate_fan_in_and_fan_out(
        torch.empty(shape))


def test_pytorch_linear_default_is_he_uniform_with_a_sqrt5():
    # kaiming_uniform_(a=sqrt(5)): gain^2 = 2/(1+5) = 1/3, so
    # bound = gain*sqrt(3/fan_in) = 1/sqrt(fan_in).
    d = wi.describe((30, 20), "he_uniform", nonlinearity="leaky_relu", a=math.sqrt(5))
    assert d["bound"] == pytest.approx(1 / math.sqrt(20), rel=1e-15)
    assert d["variance"] == pytest.approx(1 / (3 * 20), rel=1e-15)
    lin = nn.Linear(20, 30)
    assert lin.weight.abs().max() <= 1 / math.sqrt(20)


# ----------------------------------------------------------------------------- seeds, fans
def test_parameter_seed_recipe_and_errors():
    for seed, name in ((0, "0.weight"), (2**64 - 1, "encoder.layers.3.linear1.weight"),
                       (5, "lstm.weight_hh_l0#2"), (7, "ü")):
        assert wt.parameter_seed(seed, name) == seed_of(seed, name)
    assert wt.parameter_seed(1, "a") != wt.parameter_seed(2, "a")
    with pytest.raises(ValueError, match="seed"):
        wt.parameter_seed(-1, "a")
    with pytest.raises(TypeError, match="name"):
        wt.parameter_seed(1, 3)


def test_layer_fans():
    assert wt.layer_fans(nn.Linear(20, 30)) == (20, 30)
    # Conv: fan_in = in/g * k (as PyTorch); fan_out = out/g * k / stride (PyTorch: out * k).
    c = nn.Conv2d(8, 16, 3, stride=2, groups=4)
    assert wt.layer_fans(c) == (2 * 9, 4 * 9 / 4)
    assert nn.init._calculate_fan_in_and_fan_out(c.weight) == (18, 144)
    # ConvTranspose: weight (in, out/g, *k); fan_in = in/g * k / stride, fan_out = out/g * k.
    t = nn.ConvTranspose2d(64, 8, 4, stride=2)
    assert wt.layer_fans(t) == (64 * 16 / 4, 8 * 16)
    assert nn.init._calculate_fan_in_and_fan_out(t.weight) == (8 * 16, 64 * 16)  # swapped
    t3 = nn.ConvTranspose3d(6, 4, (2, 3, 3), stride=(1, 3, 1), groups=2)
    assert wt.layer_fans(t3) == (3 * 18 / 3, 2 * 18)
    with pytest.raises(TypeError, match="layer_fans"):
        wt.layer_fans(nn.Embedding(3, 4))


def _conditional_output_variance(w):
    """E[mean y^2 | W] over output channels and interior positions of ConvTranspose2d(k=4,
    stride=2, padding=1) applied to N(0, 1) inputs: each interior output takes, per input
    channel, the 2 x 2 kernel taps of its parity class; the four classes partition the 16 taps
    and occur equally often in the interior, so the mean of the per-class sums of W^2 is
    sum(W^2) / (out_channels * 4)."""
    w = w.detach().double()
    return float((w**2).sum() / (w.shape[1] * 4))


def test_conv_transpose_true_fans_preserve_the_forward_variance():
    cin, cout = 64, 8
    layer = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
    # init_module_: lecun_normal with fan_in = 64 * 16 / 4 = 256, Var(W) = 1/256.
    wt.init_module_(layer, "lecun_normal", seed=0)
    plan = wt.module_plan(layer, "lecun_normal", seed=0)
    assert plan[0].params["fans"] == (256.0, 128.0)
    s_true = _conditional_output_variance(layer.weight)
    # S = sum of 8192 squares of N(0, 1/256) over 32 (= 8 channels x 4 classes): mean 1,
    # relative sd sqrt(2 / 8192) = 0.0156; 5 sd = 0.078.
    assert abs(s_true - 1.0) < 5 * math.sqrt(2 / 8192)

    # Simulated: y = layer(x), x ~ N(0, 1), interior positions 1..30 of the 32 x 32 output.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, cin, 16, 16, generator=gen)
    with torch.no_grad():
        y = layer(x)[:, :, 1:31, 1:31].double()
    t = (y**2).mean(dim=(1, 2, 3))  # one mean per sample: independent given W
    # Tolerance from the data: 5 standard errors of the mean of 64 independent samples.
    assert abs(float(t.mean()) - s_true) < 5 * float(t.std()) / math.sqrt(len(t))

    # PyTorch's convention, fan_in = weight.shape[1] * 16 = 128: the same draws scaled by
    # sqrt(256/128), so exactly twice the variance (in general in*g / (out * stride^d)).
    wt.init_(layer.weight, "lecun_normal", seed=wt.parameter_seed(0, "weight"))
    s_pt = _conditional_output_variance(layer.weight)
    assert s_pt == pytest.approx(2 * s_true, rel=1e-6)
    # PyTorch itself (kaiming_normal_, fan_in mode, gain 1) makes the same error.
    torch.manual_seed(0)
    nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
    assert abs(_conditional_output_variance(layer.weight) - 2.0) < 2 * 5 * math.sqrt(2 / 8192)


# ----------------------------------------------------------------------------- init_module_
def test_schemes_follow_the_activations_of_a_sequential():
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.BatchNorm1d(16),
                        nn.Dropout(0.1), nn.Tanh(), nn.Linear(16, 16), nn.SELU(),
                        nn.Linear(16, 16), nn.LeakyReLU(0.2), nn.Linear(16, 4))
    wt.init_module_(net, seed=9)
    want = {"0": ("he_normal", {}), "2": ("glorot_uniform", {}), "6": ("lecun_normal", {}),
            "8": ("he_normal", {"nonlinearity": "leaky_relu", "a": 0.2}),
            "10": ("glorot_uniform", {})}  # the output layer: linear
    for name, (scheme, params) in want.items():
        w = getattr(net, name).weight
        ref = wi.init(tuple(w.shape), scheme, seed=seed_of(9, f"{name}.weight"), **params)
        np.testing.assert_array_equal(w.detach().numpy(), ref, err_msg=name)
        assert not getattr(net, name).bias.detach().any()
    assert net[3].weight.detach().eq(1).all()  # BatchNorm untouched


def test_detection_flattens_nested_sequentials_and_falls_back_elsewhere():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            return torch.relu(self.fc(x))

    net = nn.Sequential(nn.Sequential(nn.Linear(6, 6)), nn.Sequential(nn.GELU(), Block()),
                        nn.Linear(6, 6), Block())
    plan = {p.name: p for p in wt.module_plan(net, seed=1)}
    assert plan["0.0.weight"].activation == ("gelu", None)
    assert plan["0.0.weight"].scheme == "he_normal"
    assert plan["1.1.fc.weight"].activation == ("linear", None)  # custom forward: default
    assert plan["2.weight"].activation == ("linear", None)  # followed by a non-activation block
    plan = {p.name: p for p in wt.module_plan(net, seed=1, activation="relu")}
    assert plan["1.1.fc.weight"].scheme == "he_normal"
    assert plan["2.weight"].activation == ("relu", None)
    plan = {p.name: p for p in wt.module_plan(net, seed=1, activation=nn.LeakyReLU(0.3))}
    assert plan["3.fc.weight"].params == {"nonlinearity": "leaky_relu", "a": 0.3,
                                         "fans": (6.0, 6.0)}


def test_values_depend_on_the_name_not_on_other_layers():
    class A(nn.Module):
        def __init__(self, extra):
            super().__init__()
            if extra:
                self.first = nn.Linear(5, 5)
            self.enc = nn.Linear(5, 7)
            self.dec = nn.Conv1d(7, 3, 3)

    a, b = A(False), A(True)
    wt.init_module_(a, seed=4, activation="relu")
    wt.init_module_(b, seed=4, activation="relu")
    for n in ("enc.weight", "dec.weight"):
        assert torch.equal(a.get_parameter(n), b.get_parameter(n))
    wt.init_module_(b, seed=5, activation="relu")
    assert not torch.equal(a.enc.weight, b.enc.weight)


def test_explicit_scheme_bias_auto_and_errors():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8, 2))
    wt.init_module_(net, "he_uniform", mode="fan_out", seed=2, bias="auto")
    w = net[0].weight
    # fan_out = 8 * 9 / 4 = 18 (stride 2), bound sqrt(6 / 18).
    ref = wi.he_uniform((8, 3, 3, 3), mode="fan_out", fans=(27, 18), seed=seed_of(2, "0.weight"))
    np.testing.assert_array_equal(w.detach().numpy(), ref)
    assert w.abs().max() <= math.sqrt(6 / 18)
    assert net[0].bias.detach().eq(torch.tensor(0.01)).all()  # ReLU follows: 0.01
    assert not net[3].bias.detach().any()  # output layer, linear: 0
    with pytest.raises(TypeError, match="need an explicit `scheme`"):
        wt.init_module_(net, gain=2.0)
    with pytest.raises(ValueError, match="Unknown `scheme`"):
        wt.init_module_(net, "kaiming")
    with pytest.raises(ValueError, match="activation"):
        wt.init_module_(net, activation="swish2")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        wt.init_module_([1, 2])
    lazy = nn.Sequential(nn.LazyLinear(3))
    with pytest.raises(ValueError, match="lazy"):
        wt.init_module_(lazy, seed=0)


def test_embedding_and_padding_row():
    emb = nn.Embedding(10, 6, padding_idx=3)
    wt.init_module_(emb, seed=8)
    w = emb.weight.detach().numpy()
    ref = wi.normal((10, 6), std=1.0, seed=seed_of(8, "weight"))
    ref[3] = 0
    np.testing.assert_array_equal(w, ref)
    wt.init_module_(emb, seed=8, embedding_std=0.02)
    np.testing.assert_allclose(emb.weight.detach().numpy(), 0.02 * ref, rtol=1e-6)


@pytest.mark.parametrize("cls, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_layers(cls, gates):
    hidden, inputs = 6, 4
    rnn = cls(inputs, hidden, num_layers=2, bidirectional=True)
    wt.init_module_(rnn, seed=3)
    params = dict(rnn.named_parameters())
    for name, p in params.items():
        p = p.detach().numpy()
        if name.startswith("bias"):
            want = np.zeros(gates * hidden, np.float32)
            if cls is nn.LSTM and name.startswith("bias_ih"):
                want[hidden:2 * hidden] = 1.0  # forget gate (i, f, g, o)
            np.testing.assert_array_equal(p, want, err_msg=name)
            continue
        for k in range(gates):
            block = p[k * hidden:(k + 1) * hidden].astype(np.float64)
            s = seed_of(3, f"{name}#{k}")
            if name.startswith("weight_hh"):
                np.testing.assert_allclose(block.T @ block, np.eye(hidden), atol=1e-6)
                np.testing.assert_array_equal(block, wi.orthogonal((hidden, hidden), seed=s))
            else:
                np.testing.assert_array_equal(block, wi.glorot_uniform(block.shape, seed=s))
    if cls is nn.LSTM:
        total = params["bias_ih_l0"] + params["bias_hh_l0"]
        assert total[hidden:2 * hidden].eq(1).all() and total[:hidden].eq(0).all()


def test_lstm_projection_and_cells():
    lstm = nn.LSTM(3, 5, proj_size=2)
    wt.init_module_(lstm, seed=1)
    hr = lstm.weight_hr_l0.detach().double().numpy()  # (2, 5): orthonormal rows
    np.testing.assert_allclose(hr @ hr.T, np.eye(2), atol=1e-6)
    hh = lstm.weight_hh_l0.detach().double().numpy()  # (20, 2): four (5, 2) blocks
    for k in range(4):
        b = hh[5 * k:5 * (k + 1)]
        np.testing.assert_allclose(b.T @ b, np.eye(2), atol=1e-6)
    cell = nn.RNNCell(3, 4, nonlinearity="relu")
    plan = {p.name: p for p in wt.module_plan(cell, seed=0)}
    assert plan["weight_ih"].scheme == "he_normal"
    assert plan["weight_hh"].scheme == "orthogonal"
    gru = nn.GRUCell(3, 4)
    wt.init_module_(gru, seed=0)
    assert not gru.bias_ih.detach().any()


def test_seed_none_draws_fresh_values():
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    wt.init_module_(a)
    wt.init_module_(b)
    assert not torch.equal(a.weight, b.weight)


def test_import_needs_no_torch_and_names_the_extra():
    code = ("import sys; import weightinit, weightinit.lsuv; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules; "
            "sys.modules['torch'] = None\n"
            "try:\n    import weightinit.torch\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert 'pip install "weightinit[torch]"' in out
