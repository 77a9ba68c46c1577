r"""Residual-network signal propagation: the ``architecture="residual"`` path of
:func:`weightinit.simulate`.

Block :math:`l` maps the residual stream :math:`h_l` (samples x width, rows are samples) to

* ``norm=None``: :math:`h_{l+1} = h_l + \alpha F(h_l)`;
* ``norm_position="pre"``: :math:`h_{l+1} = h_l + \alpha F(N(h_l))` (pre-activation / pre-LN:
  He et al. 2016, "Identity mappings in deep residual networks"; Xiong et al. 2020, "On layer
  normalization in the transformer architecture");
* ``norm_position="post"``: :math:`h_{l+1} = N(h_l + \alpha F(h_l))` (post-LN, the original
  transformer; Xiong et al. 2020; DeepNet's branch scaling: Wang et al. 2022),

with the branch :math:`F(x) = \phi(x W_1 + b_1)` (``branch_depth=1``) or
:math:`F(x) = \phi(x W_1 + b_1) W_2 + b_2` (``branch_depth=2``), every :math:`W` of shape
(width, width) drawn by the scheme, and :math:`N` LayerNorm or RMSNorm without gain and bias
(:mod:`weightinit.kernels.norm`).

The work reuses the MLP path's pieces: the branch's bias + activation + statistics is the MLP
forward kernel, the residual stream's statistics are the same kernel for the linear activation
(without post-normalisation run together with the add, one chunk of rows at a time:
``kernels.mlp.STREAM``), the weights rotate through the same three buffers drawn two uses
ahead, and the same team of threads splits the samples. Every operation of a block is row-wise,
so the forward pass runs through the team's pipeline (``_Team.run_layers``, one step per weight
matrix): each thread runs the blocks on its rows at its own pace, waiting only for the weights.
Memory is flat in depth; the backward pass recomputes each segment of ``checkpoint`` blocks
from its saved input (one step of the team per weight matrix).
"""

import math
import threading
import types

import numpy as np

from . import _validate as V
from .initializers import normal
from .kernels import mlp as K
from .kernels import norm as KN
from .residual_theory import NORM_EPS  # the normalisation's epsilon, PyTorch's default

NORMS = ("layer", "rms")
NORM_POSITIONS = ("pre", "post")
#: Named branch scales, of the number of blocks L.
BRANCH_SCALES = {"1": lambda L: 1.0, "1/sqrt(L)": lambda L: 1.0 / math.sqrt(L),
                 "1/L": lambda L: 1.0 / L, "1/sqrt(2L)": lambda L: 1.0 / math.sqrt(2 * L)}


def check_residual(architecture, branch_depth, branch_scale, norm, norm_position, widths,
                   input_dim, x):
    """Validate the residual arguments (before any allocation); returns (branch_depth, alpha)."""
    V.check_choice("architecture", architecture, ("mlp", "residual"))
    if norm is not None:
        V.check_choice("norm", norm, NORMS)
    V.check_choice("norm_position", norm_position, NORM_POSITIONS)
    branch_depth = V.check_int("branch_depth", branch_depth, low=1, high=3)
    if isinstance(branch_scale, str):
        if branch_scale not in BRANCH_SCALES:
            raise ValueError(f"`branch_scale` must be a non-negative finite number or one of "
                             f"{sorted(BRANCH_SCALES)}. Received: branch_scale={branch_scale!r}")
    else:
        V.check_real("branch_scale", branch_scale, nonnegative=True)
    if architecture == "mlp":
        if branch_depth != 1 or norm is not None or norm_position != "pre" or branch_scale != 1.0:
            raise ValueError("`branch_depth`, `branch_scale`, `norm` and `norm_position` apply "
                             "to architecture='residual' only. Pass architecture='residual'.")
        return branch_depth, 1.0
    if len(set(widths)) != 1:
        raise ValueError(f"A residual network keeps one width: `widths` must be all equal. "
                         f"Received: widths={widths!r}")
    n = widths[0]
    if input_dim != n:
        what = f"x with {input_dim} features" if x is not None else f"input_dim={input_dim}"
        raise ValueError(f"architecture='residual' needs input_dim == width ({n}): the skip "
                         f"connection adds each block's input to its branch. Received {what}")
    blocks = len(widths)
    alpha = (BRANCH_SCALES[branch_scale](blocks) if isinstance(branch_scale, str)
             else float(branch_scale))
    return branch_depth, alpha


def recipe_layers(recipe, params, architecture, blocks, bd, width):
    """A transformer recipe (:mod:`weightinit.recipes`) as the weights of ``blocks`` residual
    blocks of ``bd``-layer branches and model width ``width``: ``(layer_spec, gate)``, where
    ``layer_spec(matrix)`` is the ``(scheme, params)`` of weight matrix ``matrix`` (block
    ``matrix // bd``; the branch's last layer has role ``mlp_out``, the others ``mlp_in``) or
    None where the recipe keeps the framework's default, and ``gate`` the recipe's constant
    ``residual_gate`` (1 if it has none). ZerO's ``zero_init`` of a square matrix is the
    identity. Raises the recipe's own errors (unknown name or parameter, missing
    ``base_width``...) before anything is drawn; a ValueError for an MLP ``architecture``."""
    from . import recipes

    if architecture != "residual":
        raise ValueError("`recipe` sets the weights of residual blocks by their role; pass "
                         "architecture='residual', or use `scheme` for an MLP.")

    shape = (width, width)

    def rule(role, block):
        return recipes.rule(recipe, role, layer=block, n_layers=blocks, width=width, shape=shape,
                            **params)

    specs = []
    for m in range(blocks * bd):
        r = rule("mlp_out" if m % bd == bd - 1 else "mlp_in", m // bd)
        spec = r.as_scheme()
        specs.append(("identity", {}) if spec is not None and spec[0] == "zero_init" else spec)
    gates = {(g.distribution, g.value) for g in (rule("residual_gate", l) for l in range(blocks))}
    if len(gates) != 1:
        raise ValueError(f"Recipe {recipe!r} gives its blocks different residual gates; the "
                         "simulation has one branch scale.")
    kind, value = gates.pop()
    return specs.__getitem__, (value if kind == "constant" else 1.0)


def simulate_residual(*, blocks, width, samples, bd, alpha, norm, position, activation, dtype,
                      seed, bins, backward, checkpoint, progress, b, bias_std, slope, x, std,
                      scheme, scheme_params, layer_spec=None):
    """The residual simulation (arguments validated by :func:`weightinit.simulate`); returns
    the fields of its :class:`~weightinit.simulation.SimulationResult`."""
    from . import simulation as S

    n_mats = blocks * bd
    dims = [width] * (n_mats + 1)
    fwd, bwd = K.KERNELS[activation, dtype.name]
    fwd_lin = K.KERNELS["linear", dtype.name][0]
    stream = K.STREAM[dtype.name]
    kslope = dtype.type(slope)
    center = norm == "layer"
    pre, post = norm is not None and position == "pre", norm is not None and position == "post"
    if backward:
        checkpoint = max(1, round(math.sqrt(blocks))) if checkpoint is None else V.check_int(
            "checkpoint", checkpoint, low=1)
        n_saved = blocks // checkpoint + 5 * checkpoint + 4
    else:
        n_saved = 0
    V.check_memory((3 * width * width + (6 + n_saved) * samples * width) * dtype.itemsize
                   + 80 * samples * width, f"residual simulation of width {width}",
                   "Use fewer `samples` or a smaller `width`.")

    draw_weights, plans, sigma_w2 = S._layer_weights(dims, seed, dtype, std, scheme,
                                                     scheme_params, layer_spec)
    h0, input_var = S._input(x, samples, width, seed, dtype)
    team = S._Team(samples)
    starts = list(range(0, blocks, checkpoint)) if backward else []
    order = list(range(n_mats))
    for s in reversed(starts):
        mats = [l * bd + k for l in range(s, min(s + checkpoint, blocks)) for k in range(bd)]
        order += mats + mats[::-1]

    def bias_vector(layer):
        bvec = np.full(width, b, dtype)
        if bias_std > 0:
            with S.serial():
                bvec += normal(width, 0.0, bias_std, seed=S.stream_seed(seed, layer, S._BIAS),
                               dtype=dtype)
        return bvec

    weights = S._Weights(order, dims, dtype, plans, draw_weights,
                         [S.stream_seed(seed, layer, S._WEIGHT) for layer in range(n_mats)],
                         bias_vector, team)
    # Statistics and histograms by block parity: the last thread to finish block l reduces
    # its while the others already compute block l + 1's.
    parts = [{k: np.empty((team.n_chunks, K.N_STATS, width)) for k in ("branch", "stream")}
             for _ in range(2)]
    out_sums = np.empty((2, team.n_chunks, 2, width))  # the branch output's second moment
    hists = np.zeros((team.size, 4, bins), np.int64)  # each thread's scratch
    no_hist = np.zeros((4, 0), np.int64)
    zero_bias = np.zeros(width, dtype)
    sat_lo, sat_hi = S.SATURATION.get(activation, (-math.inf, math.inf))
    inf = math.inf
    t_alpha = dtype.type(alpha)

    def mat():
        return np.empty((samples, width), dtype)

    def buffers(h, hn=None, keep=False, scratch=None):
        """One block's arrays: its input h, output hn, branch input xb (pre-norm), branch
        activations a (and a2: the second layer's output), the normalisations' row scales and,
        with ``keep`` (recomputation for the backward pass), the pre-activations z1. Blocks
        may share the ``scratch`` of another block's (row-wise work: each thread only ever
        touches its own rows)."""
        sc = scratch or types.SimpleNamespace(
            xb=mat() if pre else None, a=mat(), a2=mat() if bd == 2 else None,
            s_pre=np.empty(samples), s_post=np.empty(samples))
        return types.SimpleNamespace(
            h=h, hn=mat() if hn is None else hn, xb=sc.xb if pre else h, a=sc.a, a2=sc.a2,
            z1=mat() if keep else None, s_pre=sc.s_pre, s_post=sc.s_post)

    def block_rows(k, use, t, B, par):
        """Thread t's rows of block step k (branch layer k + 1) with the weights of ``use``,
        statistics into the buffers of parity ``par``; after the last branch layer, the
        residual sum (with the branch output's second moment), post-norm and the stream's
        statistics."""
        (r0, r1), (c0, c1) = team.rows[t], team.chunks[t]
        w, bvec = weights.view(use), weights.bias(use)
        P = parts[par]
        with np.errstate(over="ignore", invalid="ignore"):  # reported as `nonfinite`
            if k == 0:
                if pre:
                    KN.forward(B.h, B.xb, B.s_pre, center, NORM_EPS, r0, r1)
                team.matmul(B.xb, w, B.a, t)
                if B.z1 is not None:
                    np.add(B.a[r0:r1], bvec, out=B.z1[r0:r1])
                fwd(B.a, bvec, kslope, sat_lo, sat_hi, P["branch"], 0.0, 0.0, no_hist, c0, c1)
                f, fbias = B.a, zero_bias
            else:
                team.matmul(B.a, w, B.a2, t)
                f, fbias = B.a2, bvec
            if k == bd - 1 and post:
                K.residual_add(B.h, f, fbias, t_alpha, B.hn, out_sums[par], bd == 2, c0, c1)
                KN.forward(B.hn, B.hn, B.s_post, center, NORM_EPS, r0, r1)
                fwd_lin(B.hn, zero_bias, kslope, -inf, inf, P["stream"], 0.0, 0.0, no_hist,
                        c0, c1)
            elif k == bd - 1:  # the add and the stream's statistics, chunk by chunk
                stream(B.h, f, fbias, t_alpha, B.hn, out_sums[par], bd == 2, P["stream"], c0,
                       c1)

    names = ("mean", "var", "q", "saturated", "dead", "dead_units", "nonfinite", "branch_q",
             "branch_ratio")
    stats = {k: np.empty(blocks) for k in names}
    hist = np.zeros((blocks, bins), np.int64)
    edges = np.empty((blocks, bins + 1))
    report = S._progress_fn(progress, blocks * (2 if backward else 1))
    totals = np.empty(7)

    def reduce(part):
        K.reduce_partials(part, samples, totals)
        return totals.tolist()

    # The forward pass: blocks read h0 first, then the two outputs in turn (never writing over
    # h0: it may be the caller's `x`, and the backward pass restarts from it).
    outs = [mat(), mat()]
    first = buffers(h0, outs[0])
    fwd_blocks = [first] + [buffers(outs[(l - 1) % 2], outs[l % 2], scratch=first)
                            for l in range(1, blocks)]
    saved = {0: h0} if backward else None

    def compute(use, t):
        layer, k = divmod(use, bd)
        block_rows(k, use, t, fwd_blocks[layer], layer % 2)

    ranges = np.empty((blocks, 2))
    hist_lock = threading.Lock()

    def count(use, t):  # the stream's histogram range is known once every thread is done
        layer = use // bd
        h_t = hists[t]
        h_t[:] = 0
        K.histogram(fwd_blocks[layer].hn, *ranges[layer].tolist(), h_t, *team.rows[t])
        with hist_lock:
            hist[layer] += h_t.sum(axis=0)

    def finish(use):
        layer, k = divmod(use, bd)
        if k != bd - 1:
            return
        par = layer % 2
        P = parts[par]
        s1, s2, _, _, _, bad, _ = reduce(P["stream"])
        n = samples * width
        good = n - bad
        mean = s1 / good if good else math.nan
        stats["mean"][layer] = mean
        stats["var"][layer] = max(s2 / good - mean * mean, 0.0) if good else math.nan
        stats["q"][layer] = s2 / good if good else math.nan
        stats["nonfinite"][layer] = bad / n
        _, b2, bz2, sat, zero, bbad, dead_units = reduce(P["branch"])
        stats["branch_q"][layer] = bz2 / n
        stats["saturated"][layer] = sat / n
        stats["dead"][layer] = zero / n
        stats["dead_units"][layer] = dead_units / width
        # the branch output: the second layer's, else the activations
        f2_sum, f_bad = out_sums[par].sum(axis=(0, 2)).tolist() if bd == 2 else (b2, bbad)
        f2 = f2_sum / (n - f_bad) if n > f_bad else math.nan
        skip_q = stats["q"][layer - 1] if layer else input_var  # the stream's q before the block
        stats["branch_ratio"][layer] = alpha * alpha * f2 / skip_q if skip_q > 0 else math.nan
        ranges[layer] = S._data_range(P["stream"])
        edges[layer] = np.linspace(*ranges[layer].tolist(), bins + 1)
        if backward and layer + 1 in starts:
            saved[layer + 1] = fwd_blocks[layer].hn.copy()
        report(layer + 1)

    with team:
        team.run(lambda t: (weights.draw(0, t), weights.draw(1, t)))
        team.run_layers(n_mats, compute, weights.draw, finish, count,
                        counted=lambda use: use % bd == bd - 1)
        grad_var = grad_norm = None
        if backward:
            grad_var, grad_norm = _backward(
                saved, checkpoint, blocks, bd, samples, width, dtype, seed, n_mats, buffers,
                block_rows, weights, bwd, kslope, t_alpha, alpha, pre, post, center, team,
                report)
    return dict(stats=stats, hist=hist, edges=edges, sigma_w2=sigma_w2[::bd].copy(),
                branch_sigma_w2=sigma_w2.reshape(blocks, bd).copy(),
                input_var=input_var, grad_var=grad_var, grad_norm=grad_norm, alpha=alpha)


def _backward(saved, checkpoint, blocks, bd, samples, width, dtype, seed, use, buffers,
              block_rows, weights, bwd, slope, t_alpha, alpha, pre, post, center, team, report):
    r"""Back-propagate a N(0, 1) cotangent g = dL/dh_L. Through block l (u = h + alpha F(x)):

    * post-norm: :math:`g_u = N^\top g` (the norm's backward at the block's output), else
      :math:`g_u = g`;
    * the branch: :math:`g_F = \alpha g_u`; one layer :math:`g_x = (g_F \odot \phi'(z_1))
      W_1^\top`; two layers :math:`g_x = ((g_F W_2^\top) \odot \phi'(z_1)) W_1^\top`;
    * pre-norm: :math:`g_x \leftarrow N^\top g_x` (the norm's backward at the branch input);
    * :math:`dL/dh_l = g_u + g_x` (skip plus branch).

    grad_var[l] is the second moment of dL/dh_{l+1} (block l's output), grad_norm[l] its mean
    per-sample L2 norm; summed per chunk of rows, so they do not depend on the team.

    One pass of the team's pipeline over the weight uses from ``use`` on: per segment of
    ``checkpoint`` blocks (the last first), its blocks forwards again from the saved input, one
    step per weight matrix, then back through them, one step per weight matrix. Every step is
    row-wise, so each thread only touches its own rows and may run a step ahead; the
    cotangent's buffers alternate by block, a segment's recomputed blocks are made by the first
    thread that needs them and dropped once the segment is done."""
    from . import simulation as S

    grad_var, grad_norm = np.empty(blocks), np.empty(blocks)
    g0 = normal((samples, width), seed=S.stream_seed(seed, blocks, S._COTANGENT), dtype=dtype)
    cot = [g0, np.empty_like(g0)]  # dL/dh of block l's output, alternating by block
    X, gb = np.empty_like(g0), np.empty_like(g0)  # scratch within a block (each thread its rows)
    gu_buf = np.empty_like(g0) if post else None
    sums = np.empty((2, 2, team.n_chunks))  # by block parity
    steps = []  # (recompute?, block, branch layer k, segment start, backward block number)
    for s in sorted(saved, reverse=True):
        end = min(s + checkpoint, blocks)
        steps += [(True, layer, k, s, None) for layer in range(s, end) for k in range(bd)]
        steps += [(False, layer, k, s, blocks - 1 - layer) for layer in range(end - 1, s - 1, -1)
                  for k in range(bd)]
    recs, lock = {}, threading.Lock()

    def rec(s, layer):
        """Block ``layer``'s recomputed arrays (segment ``s``), made on first use."""
        return S._made(recs, (s, layer), lock, lambda: buffers(
            saved[s] if layer == s else recs[s, layer - 1].hn, keep=True))

    def last(r0, r1, gx, gu, gin, B):
        if pre:
            KN.backward(gx, B.xb, B.s_pre, center, gx, r0, r1)
        np.add(gx[r0:r1], gu[r0:r1], out=gin[r0:r1])

    def compute(u, t):
        again, layer, k, s, j = steps[u - use]
        if again:
            block_rows(k, u, t, rec(s, layer), 0)
            return
        B = recs[s, layer]
        (r0, r1), (c0, c1) = team.rows[t], team.chunks[t]
        g, gin = cot[j % 2], cot[(j + 1) % 2]
        gu = gu_buf if post else g
        w = weights.view(u)
        with np.errstate(over="ignore", invalid="ignore"):
            if k == 0:  # the branch's last layer first
                K.cotangent_sums(g, sums[j % 2], c0, c1)
                if post:
                    KN.backward(g, B.hn, B.s_post, center, gu_buf, r0, r1)
                np.multiply(gu[r0:r1], t_alpha, out=X[r0:r1])
                if bd == 1:
                    bwd(X, B.z1, slope, r0, r1)
                team.matmul(X, w.T, gb, t)
                if bd == 1:
                    last(r0, r1, gb, gu, gin, B)
            else:
                bwd(gb, B.z1, slope, r0, r1)
                team.matmul(gb, w.T, X, t)
                last(r0, r1, X, gu, gin, B)

    def finish(u):
        again, layer, k, s, j = steps[u - use]
        if again or k != bd - 1:
            return
        S._backward_step_done(sums[j % 2], layer, s, samples, width, grad_var, grad_norm, recs,
                              lock)
        report(2 * blocks - layer)

    team.run_layers(len(steps), compute, weights.draw, finish, first=use)
    return grad_var, grad_norm
