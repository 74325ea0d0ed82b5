"""Batching: the Rust chunker and its twin agree; invariants hold (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasekit import _core, fs, reference


@given(st.lists(st.integers(), max_size=300), st.integers(min_value=1, max_value=40), st.booleans())
def test_chunks_agree_and_cover_in_order(items, size, balanced):
    got = fs.chunks(items, size, balanced=balanced)
    assert got == reference.chunks(items, size, balanced=balanced)
    assert [x for chunk in got for x in chunk] == items
    assert all(1 <= len(c) <= size for c in got)
    if balanced:
        assert len(got) == -(-len(items) // size)
        lengths = [len(c) for c in got]
        assert not lengths or max(lengths) - min(lengths) <= 1
    else:
        assert all(len(c) == size for c in got[:-1])


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=500))
def test_chunk_ranges_tile_the_range(length, size):
    ranges = _core.chunk_ranges(length, size, balanced=True)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(length))


@given(st.lists(st.integers(), max_size=200), st.integers(min_value=1, max_value=30))
def test_iter_chunks_streams_any_iterable(items, size):
    assert list(fs.iter_chunks(iter(items), size)) == fs.chunks(items, size)


def test_chunks_slice_numpy_arrays_and_tuples():
    arr = np.arange(10)
    parts = fs.chunks(arr, 4)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert fs.chunks((1, 2, 3), 2) == [(1, 2), (3,)]


@pytest.mark.parametrize("impl", [fs, reference])
def test_bad_chunk_size(impl):
    with pytest.raises(ValueError, match="size"):
        impl.chunks([1, 2], 0)
    with pytest.raises(ValueError, match="size"):
        list(fs.iter_chunks([1], 0))
