"""A cube's blocks that reach a process one by one (Dask workers) share one grid there, not one copy each."""

import logging
import pickle
import warnings

import dask
import dask.core
import numpy as np
from conftest import loopback_cluster

import xcoact
from xcoact.blocks import pieces_of
from xcoact.errors import XcoactWarning
from xcoact.space import Grid


def _cube(n: int = 20):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        db = xcoact.read_database(xcoact.datasets.sample_database_path())
        return xcoact.activations(db, chunks={"study": n})


def test_blocks_pickled_one_by_one_share_one_grid():
    act = _cube()
    blocks = dask.compute(*act.data.to_delayed().ravel())
    chunks = [p.chunk for b in blocks for p in pieces_of(b)]
    assert len(chunks) == 5
    copies = [pickle.loads(pickle.dumps(c)) for c in chunks]  # as Dask ships each task's result on its own
    assert len({id(c.grid) for c in copies}) == 1
    grid = copies[0].grid
    assert grid == xcoact.mni152_2mm() and (grid.mask == xcoact.mni152_2mm().mask).all()
    assert grid.name == xcoact.mni152_2mm().name


def test_grids_differing_in_mask_or_name_stay_apart():
    base = xcoact.mni152_2mm()
    mask = base.mask.copy()
    mask[45, 54, 45] = not mask[45, 54, 45]
    other = Grid(base.shape, base.affine, mask, base.name)
    renamed = Grid(base.shape, base.affine, base.mask, "another name")
    back = [pickle.loads(pickle.dumps(g)) for g in (base, other, renamed, base)]
    assert back[0] is back[3]
    assert len({id(g) for g in back[:3]}) == 3
    assert back[1].mask[45, 54, 45] != base.mask[45, 54, 45] and back[2].name == "another name"


def _grids_held(dask_worker) -> tuple[list, int]:
    from xcoact.blocks import ActivationBlock, pieces_of

    grids, blocks = set(), []
    for key, value in list(dask_worker.data.items()):
        if isinstance(value, ActivationBlock):
            blocks.append(str(key))
            grids.update(id(p.chunk.grid) for p in pieces_of(value))
    return blocks, len(grids)


def test_a_persisted_cube_holds_one_grid_per_worker_and_the_same_maps():
    act = _cube()
    local = act.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    with loopback_cluster(logging.ERROR) as client:
        on_cluster = act.persist()
        from distributed import wait

        wait(on_cluster.data)
        held = client.run(_grids_held)
        maps = on_cluster.coact.seed([[0, 20, 28]], r=10, threshold=0.1).compute()
    # every block of the cube is held (values under other keys, or replicas on the other worker, may be too)
    cube_keys = {str(k) for k in dask.core.flatten(on_cluster.data.__dask_keys__())}
    assert len(cube_keys) == 5
    assert cube_keys <= {k for keys, _ in held.values() for k in keys}
    assert all(g == 1 for b, g in held.values() if b), held
    for name in local.data_vars:
        np.testing.assert_array_equal(maps[name].values, local[name].values)
