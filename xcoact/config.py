"""Global settings.

``xcoact.config["index_cache_bytes"]`` (default 1 GiB): the largest sparse
per-study index kept in memory between seeds.  Below it (Neurosynth v7's index
is about 180 MB) the index is built once and every later seed reuses it;
above it (e.g. a database ten times v7's size) each computation streams the
index chunk by chunk, keeping memory flat at the cost of rebuilding it.
"""

from __future__ import annotations

__all__ = ["config"]

config: dict[str, int] = {"index_cache_bytes": 1 << 30}
