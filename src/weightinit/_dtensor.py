r"""Which elements of a DTensor's global tensor this rank holds, as boxes of ``region=``.

A ``torch.distributed.tensor.DTensor`` of global shape ``S`` on a device mesh holds, on each
rank, the elements ``global[ix_0, ix_1, ...]`` for one list of global indices ``ix_d`` per
tensor dimension. The placements say which: for mesh dimension ``i`` (left to right), a
``Shard(d)`` splits the current ``ix_d`` into ``mesh.size(i)`` chunks as ``torch.chunk`` does
(ceil-sized, the last ones smaller or empty) and keeps chunk ``coordinate[i]``; a
``_StridedShard(d, split_factor=f)`` (what FSDP2 produces on top of tensor parallelism) first
cuts ``ix_d`` into ``f`` pieces, chunks each, and concatenates the chunks of this coordinate;
``Replicate`` keeps ``ix_d``. The index lists are computed here by the placements' own
splitting rule (``Placement._split_tensor``) applied to ``arange(S[d])``, locally: no
communication.

Each ``ix_d`` is a union of runs of consecutive indices (one run for ``Shard``/``Replicate``,
``f`` runs for a strided shard), so the local tensor is the union of the boxes
``runs_0 x runs_1 x ...``, each filled with ``weightinit.init(S, ..., region=box)``: bitwise the
elements of the single-process tensor.
"""

import itertools

import torch
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.placement_types import Partial, Replicate, Shard, _StridedShard

__all__ = ["is_dtensor", "local_indices", "local_boxes"]


def is_dtensor(tensor):
    return isinstance(tensor, DTensor)


def _one_dim(placement):
    """The same placement on dimension 0 of a 1-D index tensor."""
    if isinstance(placement, _StridedShard):
        return _StridedShard(0, split_factor=placement.split_factor)
    return Shard(0)


def local_indices(dtensor, name="tensor"):
    """Global indices (one 1-D int64 tensor per dimension, in local order) of this rank's shard.

    Raises ValueError for a ``Partial`` placement (its local values are summands of the global
    tensor, not elements of it) and TypeError for a placement this module does not know."""
    mesh, shape = dtensor.device_mesh, tuple(dtensor.shape)
    coordinate = mesh.get_coordinate()
    if coordinate is None:  # this rank is not in the mesh: it holds nothing
        return [torch.arange(0) for _ in shape]
    ix = [torch.arange(n) for n in shape]
    for i, p in enumerate(dtensor.placements):
        if isinstance(p, Replicate):
            continue
        if isinstance(p, Partial):
            raise ValueError(
                f"`{name}` has a Partial placement on mesh dimension {i} ({p}): its local "
                "values are partial sums, not elements of the global tensor, so they cannot be "
                "initialised elementwise. Initialise it as Replicate or Shard (e.g. "
                "dtensor.redistribute(placements=[Replicate()]) first, or build the parameter "
                "with Shard/Replicate placements).")
        if not isinstance(p, (Shard, _StridedShard)):
            raise TypeError(f"`{name}` has a placement weightinit does not know on mesh "
                            f"dimension {i}: {p!r}. Supported: Shard, _StridedShard, Replicate.")
        d = p.dim % len(shape)
        chunks, _ = _one_dim(p)._split_tensor(ix[d], mesh.size(i), with_padding=False)
        ix[d] = chunks[coordinate[i]]
    return ix


def _runs(ix):
    """Maximal runs of consecutive global indices: [(local_start, global_start, length)]."""
    if ix.numel() == 0:
        return []
    breaks = (torch.nonzero(ix[1:] - ix[:-1] != 1).flatten() + 1).tolist()
    starts = [0] + breaks
    stops = breaks + [ix.numel()]
    return [(a, int(ix[a]), b - a) for a, b in zip(starts, stops)]


def local_boxes(dtensor, name="tensor", rows=None):
    """[(local slices, global region)] covering this rank's shard, one per box of runs.

    With ``rows = (start, stop)``: only the part of the shard in rows ``start:stop`` of
    dimension 0, with regions relative to that row block (as if it were a tensor of shape
    ``(stop - start, *shape[1:])``)."""
    runs = [_runs(ix) for ix in local_indices(dtensor, name)]
    if rows is not None and runs:
        r0, r1 = rows
        runs[0] = [(lo + max(g, r0) - g, max(g, r0) - r0, min(g + n, r1) - max(g, r0))
                   for lo, g, n in runs[0] if max(g, r0) < min(g + n, r1)]
    return [(tuple(slice(lo, lo + n) for lo, _, n in box),
             tuple(slice(g, g + n) for _, g, n in box))
            for box in itertools.product(*runs)]
