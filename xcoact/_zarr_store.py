"""The Zarr store :func:`xcoact.to_zarr` writes through (a module of its own: zarr is imported only when used).

zarr's ``LocalStore`` creates missing folders, its root included, on every
write.  A chunk write still running after another one failed (Dask raises at
once; the other tasks go on in their threads or on their workers) would then
bring back the temporary store the writer had just removed.  This store
wraps a ``LocalStore`` through zarr's public :class:`zarr.storage.WrapperStore`
and writes each key with :func:`xcoact.writers._fenced_put`, which creates
folders below the root but never the root: once the root is gone the write
fails instead.
"""

from __future__ import annotations

import asyncio
import os

from zarr.storage import LocalStore, WrapperStore

from . import writers as export

__all__ = ["FencedStore"]


class FencedStore(WrapperStore[LocalStore]):
    """A ``LocalStore`` over an existing root that its writes never re-create."""

    @classmethod
    def at(cls, root: str) -> FencedStore:
        """The store over ``root``, an existing (empty) directory."""
        return cls(LocalStore(root))

    def _root(self) -> str:
        return os.fspath(self._store.root)

    async def set(self, key: str, value) -> None:
        if self.read_only:
            raise ValueError("store was opened in read-only mode and does not support writing")
        await asyncio.to_thread(export._fenced_put, self._root(), key, value)

    async def set_if_not_exists(self, key: str, value) -> None:
        try:
            await asyncio.to_thread(export._fenced_put, self._root(), key, value, True)
        except FileExistsError:
            pass
