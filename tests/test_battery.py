"""Reduced statistical batteries on the generator's raw and transformed output words.

Two batteries run in the slow set (``-m slow``; WEIGHTINIT_SLOW_SCALE scales the samples):

* a NumPy/SciPy mini-battery (always): monobit, per-bit-position frequency, byte and byte-pair
  chi-square, NIST runs, 32x32 GF(2) matrix rank and Knuth's gap test, over 10**7 words (times
  the scale, at least 10**6) of each ``weightinit stream`` distribution;
* a handful of fast dieharder tests on ``weightinit stream | dieharder -g 200`` (skipped when
  ``dieharder`` is not on PATH; Debian: ``apt-get install dieharder``).

Thresholds. The mini-battery's p-values are two-sided (too good a fit is as suspicious as too
bad) and exact or asymptotically exact; a test fails when p < 2e-7, i.e. 1e-7 in either tail, so
under the null it falsely fails with probability 2e-7. dieharder's final p-values are not
uniform under the null: its Kolmogorov-Smirnov step measures max |p_(i) - i/(n+1)|, which is
smaller than the KS distance it then looks up, so its p-values lean towards 1 (simulated for 100
p-samples: P(p > 0.995) = 0.02, P(p > 1 - 1e-6) = 1e-4; bench/quality/dieharder_ks_bias.py). Its
upper tail is therefore no evidence against the generator, and a dieharder result fails here
only when p < 1e-7, which under the null happens with probability at most about 1e-7 (the
statistic is stochastically smaller than the KS distance; "about" because the tests' own
p-values are approximations). The slow set computes 7 x 3 = 21 mini-battery and 7 x 3 = 21
dieharder p-values, so the chance that a correct generator fails anything in this file is below
21 x 2e-7 + 21 x 1e-7 = 6.3e-6 < 1e-5. The seeds are fixed, so a run is reproducible.

Power. Each mini-battery test has a negative control in the default run: a deliberately bad
stream (a stuck bit, repeated bytes, doubled bits, a GF(2)-linear xorshift32, a Weyl sequence)
that the test must reject at the same threshold, so each test demonstrably can fail. The dieharder
part has one such control too (a stuck bit through sts_monobit). The full ``dieharder -a`` run is
recorded in docs/quality.md and reproduced by bench/quality/run_batteries.sh.
"""

import io
import math
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from scipy import stats

from weightinit import cli
from weightinit.random import words

from conftest import slow_sample_size, slow_scale

P_FAIL = 2e-7  # mini-battery, two-sided: 1e-7 in each tail (derivation in the module docstring)
P_FAIL_DIEHARDER = 1e-7  # dieharder, lower tail only
DISTRIBUTIONS = ("uniform32", "float32-uniform", "normal-pit")
SEED = 20250101


# ----------------------------------------------------------------------------- the battery
def _two_sided_chi2(x, df):
    return min(1.0, 2.0 * min(stats.chi2.sf(x, df), stats.chi2.cdf(x, df)))


def _two_sided_z(z):
    return math.erfc(abs(z) / math.sqrt(2.0))


def _popcount(w):
    return np.bitwise_count(w).astype(np.int64)


def monobit(w):
    """NIST SP 800-22 2.1: the number of ones among all 32N bits is Binomial(32N, 1/2);
    z = (2 ones - n) / sqrt(n) is N(0, 1)."""
    n = 32 * w.size
    return _two_sided_z((2 * int(_popcount(w).sum()) - n) / math.sqrt(n))


def bit_positions(w):
    """Each of the 32 bit positions on its own: z_b = (2 ones_b - N) / sqrt(N) are 32
    independent N(0, 1), so sum z_b**2 is chi-square with 32 degrees of freedom."""
    ones = np.array([np.count_nonzero((w >> np.uint32(b)) & np.uint32(1)) for b in range(32)])
    z = (2.0 * ones - w.size) / math.sqrt(w.size)
    return _two_sided_chi2(float(z @ z), 32)


def _chi2_uniform(counts):
    e = counts.sum() / counts.size
    return _two_sided_chi2(float(((counts - e) ** 2).sum() / e), counts.size - 1)


def bytes_chi2(w):
    """The 4N bytes (little-endian, as written) are uniform on 256 values: chi-square, 255 df."""
    return _chi2_uniform(np.bincount(w.view(np.uint8), minlength=256))


def byte_pairs(w):
    """Non-overlapping pairs of consecutive bytes are uniform on 65536 values: chi-square with
    65535 df (expected count per cell 2N / 65536 >= 30 for N >= 10**6)."""
    b = w.view(np.uint8).reshape(-1, 2).astype(np.int64)
    return _chi2_uniform(np.bincount(b[:, 0] * 256 + b[:, 1], minlength=65536))


def runs(w):
    """NIST SP 800-22 2.3 runs test on the bit string (each word most significant bit first):
    with pi the fraction of ones, the number of runs V has mean 2 n pi (1 - pi) and
    p = erfc(|V - 2 n pi (1 - pi)| / (2 sqrt(2 n) pi (1 - pi)))."""
    n = 32 * w.size
    pi = int(_popcount(w).sum()) / n
    if abs(pi - 0.5) >= 2.0 / math.sqrt(n):  # NIST prerequisite: the frequency test passes
        return 0.0
    inside = _popcount((w ^ (w >> np.uint32(1))) & np.uint32(0x7FFFFFFF)).sum()
    across = np.count_nonzero((w[:-1] & np.uint32(1)) != (w[1:] >> np.uint32(31)))
    v = 1 + int(inside) + across
    m = 2.0 * n * pi * (1.0 - pi)
    return math.erfc(abs(v - m) / (2.0 * math.sqrt(2.0 * n) * pi * (1.0 - pi)))


def gf2_ranks(rows):
    """GF(2) rank of each 32x32 bit matrix, given as an (M, 32) uint32 array of rows."""
    rows = np.array(rows, dtype=np.uint32)
    m = rows.shape[0]
    idx = np.arange(m)
    used = np.zeros(rows.shape, bool)
    rank = np.zeros(m, np.int64)
    for c in range(32):
        bit = ((rows >> np.uint32(c)) & np.uint32(1)).astype(bool)
        cand = bit & ~used
        has = cand.any(axis=1)
        piv = cand.argmax(axis=1)
        prow = rows[idx, piv]
        elim = bit & has[:, None]
        elim[idx, piv] = False  # clear column c from every other row holding it
        rows ^= np.where(elim, prow[:, None], np.uint32(0))
        used[idx[has], piv[has]] = True
        rank += has
    return rank


def gf2_rank_probabilities(n=32):
    """P(rank = r) of a uniform random n x n matrix over GF(2) (Marsaglia and Tsang 2002):
    2**(r(2n - r) - n**2) prod_{i<r} (1 - 2**(i-n))**2 / (1 - 2**(i-r))."""
    p = np.zeros(n + 1)
    for r in range(n + 1):
        prod = 1.0
        for i in range(r):
            prod *= (1.0 - 2.0 ** (i - n)) ** 2 / (1.0 - 2.0 ** (i - r))
        p[r] = 2.0 ** (r * (2 * n - r) - n * n) * prod
    return p


def rank32(w):
    """Diehard binary rank test: 32 consecutive words form a 32x32 matrix over GF(2); counts of
    rank 32, 31, 30 and <= 29 against the exact probabilities, chi-square with 3 df."""
    r = gf2_ranks(w[: w.size // 32 * 32].reshape(-1, 32))
    p = gf2_rank_probabilities()
    expect = np.array([p[32], p[31], p[30], p[:30].sum()]) * r.size
    seen = np.array([np.sum(r == 32), np.sum(r == 31), np.sum(r == 30), np.sum(r <= 29)])
    return _two_sided_chi2(float(((seen - expect) ** 2 / expect).sum()), 3)


GAP_BINS = 100


def gap(w):
    """Knuth's gap test (TAOCP 3.3.2 D): a word 'hits' when its top 4 bits are 0 (p = 1/16);
    the gaps between hits are i.i.d. geometric, P(g = k) = p q**k. Gaps 0..99 and >= 100
    (expected >= 5 per bin for N >= 10**6), chi-square with 100 df."""
    hits = np.flatnonzero((w >> np.uint32(28)) == 0)
    g = np.minimum(np.diff(hits) - 1, GAP_BINS)
    seen = np.bincount(g, minlength=GAP_BINS + 1)
    p, q = 1.0 / 16, 15.0 / 16
    probs = np.append(p * q ** np.arange(GAP_BINS), q**GAP_BINS)
    expect = probs * g.size
    return _two_sided_chi2(float(((seen - expect) ** 2 / expect).sum()), GAP_BINS)


BATTERY = {"monobit": monobit, "bit_positions": bit_positions, "bytes": bytes_chi2,
           "byte_pairs": byte_pairs, "runs": runs, "rank32": rank32, "gap": gap}


def battery(w):
    return {name: test(w) for name, test in BATTERY.items()}


def stream_words(distribution, n, seed=SEED):
    """``n`` words of ``weightinit stream`` (in-process, through the command line)."""
    if distribution == "uniform32":
        return words(n, seed=seed)
    buf = io.BytesIO()
    assert cli.main(["stream", "--seed", str(seed), "--distribution", distribution,
                     "--count", str(n)], stdout=buf) == 0
    return np.frombuffer(buf.getvalue(), dtype="<u4").astype(np.uint32)


# ----------------------------------------------------------------------------- the battery's own checks
def test_rank_probabilities_match_marsaglia():
    # Published values for 32x32 binary matrices (Marsaglia's diehard documentation).
    p = gf2_rank_probabilities()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[32] == pytest.approx(0.2887880952, abs=1e-9)
    assert p[31] == pytest.approx(0.5775761902, abs=1e-9)
    assert p[30] == pytest.approx(0.1283502644, abs=1e-9)
    assert p[:30].sum() == pytest.approx(0.0052854502, abs=1e-9)


def test_gf2_ranks_known_matrices():
    rng = np.random.default_rng(5)
    mats, want = [], []
    for r in (0, 1, 5, 29, 31, 32):
        rows = [1 << i for i in rng.permutation(32)[:r]] + [0] * (32 - r)
        rows = np.array(rows, dtype=np.uint32)[rng.permutation(32)]
        for _ in range(200):  # row operations keep the rank
            i, j = rng.integers(32, size=2)
            if i != j:
                rows[i] ^= rows[j]
        mats.append(rows)
        want.append(r)
    np.testing.assert_array_equal(gf2_ranks(np.array(mats)), want)


def test_battery_accepts_an_independent_good_generator():
    # Calibration: numpy's PCG64 must pass, so the null distributions are the right ones.
    w = np.random.default_rng(12345).integers(0, 2**32, size=2**20, dtype=np.uint32)
    result = battery(w)
    assert all(p >= P_FAIL for p in result.values()), result


def _stuck_bit(n):
    return words(n, seed=1) | np.uint32(1 << 17)


def _repeated_bytes(n):  # byte 1 = byte 0 and byte 3 = byte 2: bytes uniform, pairs not
    w = words(n, seed=2)
    lo, hi = w & np.uint32(0xFF), (w >> np.uint32(16)) & np.uint32(0xFF)
    return lo | (lo << np.uint32(8)) | (hi << np.uint32(16)) | (hi << np.uint32(24))


def _doubled_bits(n):  # every bit of a random 16-bit value twice: frequencies right, runs long
    h = words(n, seed=3) >> np.uint32(16)
    out = np.zeros(n, np.uint32)
    for i in range(16):
        b = (h >> np.uint32(i)) & np.uint32(1)
        out |= (b << np.uint32(2 * i)) | (b << np.uint32(2 * i + 1))
    return out


def _xorshift32(n):  # Marsaglia's 13/17/5: any 32 consecutive outputs have full GF(2) rank
    out = np.empty(n, np.uint32)
    x = 2463534242
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def _weyl(n):  # i * golden ratio mod 2**32: equidistributed, gaps nearly constant
    return (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B9)).astype(np.uint32)


CONTROLS = [
    ("monobit", _stuck_bit, 2**16),
    ("bit_positions", _stuck_bit, 2**16),
    ("bytes", _stuck_bit, 2**16),
    ("byte_pairs", _repeated_bytes, 2**20),
    ("runs", _doubled_bits, 2**16),
    ("rank32", _xorshift32, 2**15),
    ("gap", _weyl, 2**18),
]


@pytest.mark.parametrize("name, bad, n", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_each_test_rejects_a_bad_generator(name, bad, n):
    assert BATTERY[name](bad(n)) < P_FAIL


# ----------------------------------------------------------------------------- slow: mini-battery
@pytest.mark.slow
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_mini_battery(distribution):
    w = stream_words(distribution, slow_sample_size(base=10**7, minimum=10**6))
    result = battery(w)
    failed = {k: p for k, p in result.items() if p < P_FAIL}
    assert not failed, f"{distribution}: p-values {result}"


# ----------------------------------------------------------------------------- slow: dieharder
DIEHARDER = shutil.which("dieharder")
#: Fast dieharder tests (-d number: p-values reported): birthdays (1), 32x32 rank (1),
#: bitstream (1), runs (2), STS monobit (1), STS runs (1); about 30 s per distribution with
#: 10 p-samples each.
DIEHARDER_TESTS = {0: 1, 2: 1, 4: 1, 15: 2, 100: 1, 101: 1}


def parse_dieharder(text):
    """Result rows of dieharder's table: (test name, ntup, p-value, assessment)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 6 and not line.lstrip().startswith("#"):
            try:
                rows.append((cells[0], int(cells[1]), float(cells[4]), cells[5]))
            except ValueError:
                continue  # the header row
    return rows


def _psamples():
    return max(10, round(100 * slow_scale()))


def run_dieharder(test, source_argv=None, feed=None, timeout=1800):
    """Run ``dieharder -d test -g 200`` on ``weightinit stream`` output (``source_argv``) or on
    the words ``feed(chunk_index)`` returns; return (rows, stream exit status or None)."""
    cmd = [DIEHARDER, "-d", str(test), "-g", "200", "-p", str(_psamples())]
    if source_argv is not None:
        src = subprocess.Popen([sys.executable, "-m", "weightinit", "stream", *source_argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out = subprocess.run(cmd, stdin=src.stdout, capture_output=True, text=True,
                                 timeout=timeout).stdout
        finally:
            src.stdout.close()  # our copy: dieharder's exit now breaks the pipe
            status = src.wait(timeout=120)
            err = src.stderr.read()
            src.stderr.close()
        assert err == b"", err
        return parse_dieharder(out), status
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)

    def writer():
        i = 0
        try:
            while True:
                proc.stdin.write(feed(i).astype("<u4").tobytes())
                i += 1
        except (BrokenPipeError, ValueError, OSError):
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    out = proc.stdout.read()
    proc.wait(timeout=timeout)
    t.join(timeout=60)
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except BrokenPipeError:
            pass
    return parse_dieharder(out.decode()), None


needs_dieharder = pytest.mark.skipif(DIEHARDER is None, reason="dieharder is not installed")


@pytest.mark.slow
@needs_dieharder
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_dieharder_reduced(distribution):
    bad = []
    for test, count in DIEHARDER_TESTS.items():
        rows, status = run_dieharder(test, ["--seed", str(SEED), "--distribution", distribution])
        assert status == 0, f"weightinit stream exited {status} after dieharder -d {test}"
        assert len(rows) == count, f"dieharder -d {test} reported {rows}"
        bad += [r for r in rows if r[2] < P_FAIL_DIEHARDER]
    assert not bad, f"{distribution}: {bad}"


@pytest.mark.slow
@needs_dieharder
def test_dieharder_rejects_a_stuck_bit():
    rows, _ = run_dieharder(100, feed=lambda i: words(2**18, seed=4, offset=i * 2**18)
                            | np.uint32(1 << 9))
    assert len(rows) == 1 and rows[0][2] < P_FAIL_DIEHARDER and rows[0][3] == "FAILED", rows
