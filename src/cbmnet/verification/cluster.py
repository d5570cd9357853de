"""Space-time clusters of the observations no declaration covers (a grid DBSCAN).

Positions go to 3-D coordinates on a sphere of the Earth's mean radius (km), so a grid of
``cluster_km`` cubes has the same size everywhere, poles and antimeridian included; time
goes to ``cluster_time`` slots. A cell is a *core* when its detections weigh (count x
confidence) at least ``core_weight`` objects. Core cells that touch (any of the 80
neighbours in the 3x3x3x3 block around a cell) form one cluster; a non-core cell touching a
core joins that core's cluster (the lowest-numbered, if several); the rest is noise. This
is DBSCAN with cells for points: each step is a sort or a ``searchsorted`` over cells, and
only core cells are ever looked up around, so noise costs one pass.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from cbmnet.verification.columnar import group_index

EARTH_KM = 6371.0088
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
_OFFSETS = np.array([o for o in itertools.product((-1, 0, 1), repeat=4) if any(o)], dtype=np.int64)


def cluster(
    lon: F64, lat: F64, time: I64, w: I64, cell_km: float, cell_ms: int, core_w: int
) -> tuple[I64, int]:
    """The cluster of each row (-1: noise) and the number of clusters.

    Clusters are numbered by their first core cell in key order, which depends only on the
    data, never on the order of rows.
    """
    n = len(lon)
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels, 0
    la, lo = np.radians(lat), np.radians(lon)
    cos_la = np.cos(la)
    dims = [
        np.floor(EARTH_KM * cos_la * np.cos(lo) / cell_km).astype(np.int64),
        np.floor(EARTH_KM * cos_la * np.sin(lo) / cell_km).astype(np.int64),
        np.floor(EARTH_KM * np.sin(la) / cell_km).astype(np.int64),
        np.floor_divide(time, cell_ms).astype(np.int64),
    ]
    lows = [int(d.min()) - 1 for d in dims]
    spans = [int(d.max()) - lw + 2 for d, lw in zip(dims, lows, strict=True)]
    if sum(int(s).bit_length() for s in spans) > 62:
        raise ValueError("observations span too much space-time for the cluster grid")
    mult = np.array([int(np.prod(spans[k + 1 :], dtype=np.int64)) for k in range(4)], dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    for d, lw, m in zip(dims, lows, mult, strict=True):
        key += (d - lw) * m
    inv, first = group_index([key])
    cell_key = key[first]
    weight = np.zeros(len(first), dtype=np.int64)
    np.add.at(weight, inv, w)
    core = np.flatnonzero(weight >= core_w)
    if len(core) == 0:
        return labels, 0
    core_key = cell_key[core]
    offs = _OFFSETS @ mult
    # Core-core links, then connected components by label propagation + pointer jumping.
    lab = np.arange(len(core), dtype=np.int64)
    src: list[I64] = []
    dst: list[I64] = []
    for off in offs[offs > 0]:
        nb = core_key + off
        pos = np.searchsorted(core_key, nb)
        pos = np.minimum(pos, len(core_key) - 1)
        hit = core_key[pos] == nb
        src.append(np.flatnonzero(hit))
        dst.append(pos[hit])
    a = np.concatenate(src) if src else np.zeros(0, np.int64)
    b = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    while len(a):
        m = np.minimum(lab[a], lab[b])
        new = lab.copy()
        np.minimum.at(new, lab[a], m)  # hook the roots (labels are roots after jumping)
        np.minimum.at(new, lab[b], m)
        while True:  # pointer jumping: every label points at its root
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, lab):
            break
        lab = new
    roots, lab = np.unique(lab, return_inverse=True)
    n_clusters = len(roots)
    cell_label = np.full(len(first), -1, dtype=np.int64)
    cell_label[core] = lab
    # Border cells: non-core cells next to a core join the lowest such cluster.
    border = np.full(len(first), np.iinfo(np.int64).max, dtype=np.int64)
    for off in offs:
        nb = core_key + off
        pos = np.searchsorted(cell_key, nb)
        pos = np.minimum(pos, len(cell_key) - 1)
        hit = cell_key[pos] == nb
        np.minimum.at(border, pos[hit], lab[hit])
    attach = (cell_label < 0) & (border < np.iinfo(np.int64).max)
    cell_label[attach] = border[attach]
    labels = cell_label[inv]
    return labels, n_clusters
