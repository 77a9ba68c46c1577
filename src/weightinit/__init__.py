"""weightinit: exact, reproducible, fast neural-network weight initialisation.

``import weightinit`` compiles nothing: each Numba kernel compiles (or loads from its on-disk
cache) the first time it is used.
"""

from . import theory
from ._validate import InsufficientMemoryError
from .activations import Recommendation, bias_value, calculate_gain, recommend
from .fans import compute_fans
from .initializers import (
    FORMULAS, REGISTRY, bias, constant, delta_orthogonal, describe, dirac, get, glorot_normal,
    glorot_uniform,
    he_normal, he_uniform, identity, init, kaiming_normal, kaiming_uniform, lecun_normal,
    lecun_uniform, normal, ones, orthogonal, schemes, truncated_normal, uniform,
    variance_scaling, xavier_normal, xavier_uniform, zero_init, zeros,
)
from .lsuv import LSUVResult, lsuv
from .random import Generator
from .simulation import SimulationResult, simulate
from .spectrum import JacobianSpectrum, jacobian_spectrum
from ._warmup import warmup

__version__ = "0.1.0"

__all__ = [
    "FORMULAS", "Generator", "InsufficientMemoryError", "JacobianSpectrum", "LSUVResult",
    "REGISTRY",
    "Recommendation", "SimulationResult", "bias", "bias_value", "calculate_gain",
    "compute_fans", "constant", "delta_orthogonal", "describe", "dirac", "get",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "identity", "init",
    "jacobian_spectrum", "kaiming_normal", "kaiming_uniform",
    "lecun_normal", "lecun_uniform", "lsuv", "normal", "ones", "orthogonal", "recommend",
    "schemes", "simulate", "theory", "truncated_normal", "uniform", "variance_scaling",
    "warmup", "xavier_normal", "xavier_uniform", "zero_init", "zeros",
]
