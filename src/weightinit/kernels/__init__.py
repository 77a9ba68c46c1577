"""Numba kernels (no validation, no allocation policy, no public names)."""

from .._cache import configure as _configure_cache
from .._threads import configure as _configure


def _cache_probe():
    """Locates Numba's cache as the kernel modules beside it do (see weightinit._cache)."""


_configure()
_configure_cache(_cache_probe)
