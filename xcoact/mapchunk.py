"""A seed's map as it travels from a cluster worker: in-mask values by count pair, expanded where it is read.

Under ``dask.distributed`` a seed's nine float64 volumes are 65 MB (MNI152
2 mm); the statistics behind them are one row of values per distinct count
pair (a few tens of thousands) and each in-mask voxel's pair.  A map computed
on a worker is therefore returned as an :class:`InMaskMap` - that row, the
voxels' pair numbers (uint16 when there are at most 65,536 pairs) and the
brain mask as bits - about 0.8 MB.  It is pickled in that form and unpickled
as the volume (an ndarray), so whatever receives it - the client's
``ds.compute()``, ``.values``, ``ds["pFgA"].data.compute()``, another worker -
gets a plain array.  Locally and on a client alike, the volume is made by
one compiled pass over the mask's bits (each in-mask voxel gets its pair's
value, every other voxel 0), so its values are the same bits.

On the worker that made it, an ``InMaskMap`` acts as the array it stands for
wherever Dask or NumPy meets it (indexing, ufuncs and operators, reductions,
``astype``): each of these makes the volume first.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["InMaskMap", "OneChunk", "pair_numbers"]


def pair_numbers(inverse: np.ndarray, n_pairs: int) -> np.ndarray:
    """Each voxel's pair number in the narrowest unsigned type that holds ``n_pairs`` pairs."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_pairs <= np.iinfo(dtype).max + 1:
            return inverse.astype(dtype, copy=False)
    return inverse.astype(np.int64, copy=False)  # pragma: no cover - 2**32 pairs do not fit a brain


class InMaskMap(NDArrayOperatorsMixin):
    """One map volume held as in-mask values: ``values[pairs]`` at the mask's voxels, 0 elsewhere.

    Parameters
    ----------
    values : (n_pairs,) or (n_mask,) array
        The map's values, in the map's dtype: one per distinct count pair
        (with ``pairs``), or one per in-mask voxel (``pairs=None``).
    pairs : (n_mask,) unsigned int array or None
        Each in-mask voxel's index into ``values`` (C order of the grid).
    mask_bits : uint8 array
        ``numpy.packbits`` of the brain mask, flattened in C order.
    shape : tuple of int
        The volume's shape.
    """

    __array_priority__ = 20  # above ndarray, so ``ndarray + InMaskMap`` comes here

    def __init__(self, values: np.ndarray, pairs: np.ndarray | None, mask_bits: np.ndarray, shape: tuple):
        self.values = values
        self.pairs = pairs
        self.mask_bits = mask_bits
        self.shape = tuple(int(s) for s in shape)

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes of the volume it stands for (what it becomes when read)."""
        return self.size * self.dtype.itemsize

    def __sizeof__(self) -> int:  # what it holds (Dask's and the workers' memory accounting)
        held = self.values.nbytes + self.mask_bits.nbytes + (0 if self.pairs is None else self.pairs.nbytes)
        return object.__sizeof__(self) + held

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        n = "per voxel" if self.pairs is None else f"{self.values.size} pairs"
        return f"InMaskMap(shape={self.shape}, dtype={self.dtype}, {n})"

    def volume(self) -> np.ndarray:
        """The map as a dense array of ``shape`` (a new array each call)."""
        return _volume(*self.__reduce__()[1])

    def __array__(self, dtype=None, copy=None):
        out = self.volume()
        return out if dtype is None else out.astype(dtype, copy=False)

    # No __array_function__: xarray then turns the chunk into an ndarray when it stores a computed result,
    # and NumPy functions convert it through __array__.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(np.asarray(x) if isinstance(x, InMaskMap) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, InMaskMap) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, key):
        return self.volume()[key]

    def astype(self, dtype, **kwargs):
        return self.volume().astype(dtype, **kwargs)

    def reshape(self, *shape, **kwargs):
        return self.volume().reshape(*shape, **kwargs)

    def __reduce__(self):  # travels compact, arrives as the volume (a client's chunk, another worker's input)
        return _volume, (self.values, self.pairs, self.mask_bits, self.shape)


def _volume(values: np.ndarray, pairs: np.ndarray | None, mask_bits: np.ndarray, shape: tuple) -> np.ndarray:
    from .stats.components import compiled

    out = np.empty(int(np.prod(shape)), dtype=values.dtype)  # written once, zeros included: no memset before
    compiled(_scatter)(values, np.arange(values.size) if pairs is None else pairs, mask_bits, out)
    return out.reshape(shape)


def _scatter(values, pairs, mask_bits, out):
    """``out[v] = values[pairs[t]]`` at the ``t``-th in-mask voxel ``v``, 0 elsewhere."""
    t = 0
    n_full = out.size >> 3
    for b in range(mask_bits.size):
        m = mask_bits[b]
        if m == 0 and b < n_full:  # eight voxels outside the mask
            for e in range(8):
                out[8 * b + e] = 0
            continue
        for e in range(8):
            if 8 * b + e < out.size:
                if m & (128 >> e):
                    out[8 * b + e] = values[pairs[t]]
                    t += 1
                else:
                    out[8 * b + e] = 0


class OneChunk(da.Array):
    """A single-chunk Dask array computed as its chunk: Dask adds no finalize task (as for a ``Delayed``), on a
    cluster nine tasks and a hop fewer for a seed's maps.  Operations on it give plain Dask arrays."""

    __slots__ = ()

    def __dask_postcompute__(self):
        from dask.delayed import single_key

        return (single_key, ()) if self.npartitions == 1 else super().__dask_postcompute__()
