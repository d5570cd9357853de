"""How many objects a group of detections shows, per object class (docs/verification.md).

Each detection weighs ``count x confidence`` (in millionths, as integers, so sums do not
depend on row order). Per group, class and sensor: every track counts once, at its
heaviest detection; untracked detections in one look (a time bin, ``look``) are summed
and the sensor's heaviest look is taken; the sensor's figure is tracks + best look. The
group's estimate is the largest figure of any one sensor: sensors mostly see the same
forces, so adding them up would count those forces twice.

Streaming: :class:`SizeAccumulator` keeps partial sums per (group, class, sensor, look)
and per track, merged chunk by chunk; they are far fewer than the rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cbmnet.verification.columnar import group_index, group_max, group_sum, mix64, reduce_by
from cbmnet.verification.observations import OBJECT_CLASSES, SENSOR_KINDS

MICRO = 1_000_000
N_CLASSES = len(OBJECT_CLASSES)
N_KINDS = len(SENSOR_KINDS)
I64 = NDArray[np.int64]


def weights(count: I64, confidence: NDArray[np.float64]) -> I64:
    """``count x confidence`` in millionths of an object, exactly (integers)."""
    return count * np.rint(confidence * MICRO).astype(np.int64)


class SizeAccumulator:
    """Partial estimator sums for many groups at once, fed chunk by chunk."""

    _COMPACT_ROWS = 4_000_000

    def __init__(self, look_ms: int) -> None:
        self.look_ms = look_ms
        self._u: list[tuple[I64, I64, I64, I64, I64]] = []  # g, c, s, look, sum
        self._t: list[tuple[I64, I64, I64]] = []  # track key, gcs, max
        self._rows = 0
        self._limit = self._COMPACT_ROWS

    def add(
        self,
        group: I64,
        cls: NDArray[np.uint8],
        sensor: NDArray[np.int32],
        time: I64,
        track: NDArray[np.uint64],
        w: I64,
    ) -> None:
        if len(group) == 0:
            return
        g = group.astype(np.int64)
        c = cls.astype(np.int64)
        s = sensor.astype(np.int64)
        ut = track == 0
        if ut.any():
            part = _reduce_untracked(g[ut], c[ut], s[ut], np.floor_divide(time[ut], self.look_ms), w[ut])
            self._u.append(part)
            self._rows += len(part[0])
        tr = ~ut
        if tr.any():
            gcs = _gcs(g[tr], c[tr], s[tr])
            key = (mix64(track[tr] ^ mix64(gcs.view(np.uint64)))).view(np.int64)
            tpart = _reduce_tracks(key, gcs, w[tr])
            self._t.append(tpart)
            self._rows += len(tpart[0])
        if self._rows > self._limit:
            self._compact()
            # Data with little repetition barely shrinks: wait for twice as much next time,
            # so compaction stays O(n log n) overall instead of re-sorting on every chunk.
            self._limit = max(self._COMPACT_ROWS, 2 * self._rows)

    def _compact(self) -> None:
        if len(self._u) > 1:
            cols = [np.concatenate([p[k] for p in self._u]) for k in range(5)]
            self._u = [_reduce_untracked(*cols)]
        if len(self._t) > 1:
            tcols = [np.concatenate([p[k] for p in self._t]) for k in range(3)]
            self._t = [_reduce_tracks(tcols[0], tcols[1], tcols[2])]
        self._rows = sum(len(p[0]) for p in self._u) + sum(len(p[0]) for p in self._t)

    def estimate(self, n_groups: int) -> NDArray[np.int64]:
        """(n_groups, classes) estimates in millionths of an object."""
        self._compact()
        out = np.zeros((n_groups, N_CLASSES), dtype=np.int64)
        per_gcs: list[tuple[I64, I64]] = []  # (gcs, value) to add up
        if self._u:
            g, c, s, _look, total = self._u[0]
            inv, first = group_index([g, c, s])
            best = group_max(inv, total, len(first))
            per_gcs.append((_gcs(g[first], c[first], s[first]), best))
        if self._t:
            _key, gcs, mx = self._t[0]
            per_gcs.append((gcs, mx))
        if not per_gcs:
            return out
        gcs_all = np.concatenate([p[0] for p in per_gcs])
        val_all = np.concatenate([p[1] for p in per_gcs])
        inv, first = group_index([gcs_all])
        sensor_total = group_sum(inv, val_all, len(first))
        gcs_u = gcs_all[first]
        g_u, c_u = gcs_u >> np.int64(24), (gcs_u >> np.int64(21)) & np.int64(7)
        flat = g_u * N_CLASSES + c_u
        res = np.zeros(n_groups * N_CLASSES, dtype=np.int64)
        np.maximum.at(res, flat, sensor_total)
        return res.reshape(n_groups, N_CLASSES) if n_groups else out


def _gcs(g: I64, c: I64, s: I64) -> I64:
    """(group, class, sensor) in one int64: 21 bits of sensor, 3 of class, the rest group."""
    return (g << np.int64(24)) | (c << np.int64(21)) | s


def _reduce_untracked(g: I64, c: I64, s: I64, look: I64, w: I64) -> tuple[I64, I64, I64, I64, I64]:
    first, total = reduce_by([g, c, s, look], w, "sum")
    return g[first], c[first], s[first], look[first], total


def _reduce_tracks(key: I64, gcs: I64, w: I64) -> tuple[I64, I64, I64]:
    first, best = reduce_by([key], w, "max")
    return key[first], gcs[first], best


def estimate_groups(
    group: I64,
    cls: NDArray[np.uint8],
    sensor: NDArray[np.int32],
    time: I64,
    track: NDArray[np.uint64],
    w: I64,
    n_groups: int,
    look_ms: int,
) -> NDArray[np.int64]:
    """The estimator over rows held in memory: (n_groups, classes) in millionths."""
    acc = SizeAccumulator(look_ms)
    acc.add(group, cls, sensor, time, track, w)
    return acc.estimate(n_groups)


def kind_totals(
    group: I64, kind: NDArray[np.uint8], w: I64, count: I64, n_groups: int
) -> tuple[I64, I64]:
    """Per (group, sensor kind): summed weight and summed count (for the confidence)."""
    flat = group.astype(np.int64) * N_KINDS + kind.astype(np.int64)
    sw = np.zeros(n_groups * N_KINDS, dtype=np.int64)
    sc = np.zeros(n_groups * N_KINDS, dtype=np.int64)
    np.add.at(sw, flat, w)
    np.add.at(sc, flat, count)
    return sw, sc


def confidence(sw: I64, sc: I64) -> float:
    """1 - prod over sensor kinds of (1 - that kind's count-weighted mean confidence).

    The chance that at least one kind of sensor is right that the forces are there, if
    kinds err independently (an aerial photo and a seismic array do not share mistakes).
    """
    miss = 1.0
    for k in range(len(sw)):
        if sc[k] > 0:
            miss *= 1.0 - min(1.0, float(sw[k]) / (float(sc[k]) * MICRO))
    return round(1.0 - miss, 3)
