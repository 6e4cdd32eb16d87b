"""Near-duplicate groups of 64-bit perceptual hashes, without comparing every pair.

Two hashes are near-duplicates when they differ in at most ``threshold`` bits; a group is a
connected component of that relation (a chain a~b~c is one group even when a and c are further
apart). Equal hashes are merged first, so a million copies of one picture cost nothing.

The index (multi-index hashing): the 64 bits are cut into ``m`` bands. When two hashes differ
in at most t bits in all, some band differs in at most ``t // m`` bits (pigeonhole). The hashes
are sorted by each band once; for every hash and every way of flipping at most ``t // m`` bits
of its band, the hashes with that band value (candidates) are found by direct addressing (a
table of 2**width bucket starts for bands up to 24 bits wide, binary search above), and their
full distance is checked. ``m`` is chosen per call to minimise the expected work (at a million
hashes and the default threshold 8: 3 bands of 21-22 bits, radius 2). With few hashes or large
thresholds comparing every pair (in blocks, vectorised) is cheaper and is used instead. Both
give exactly the same groups.

Memory, one band at a time: the hashes (8 bytes each), the band's order and values (16 bytes
each), its bucket table (up to 2**24 x 8 bytes; 32 MB at 22 bits), working blocks of at most
``PAIR_BLOCK`` candidate pairs, and the near-duplicate pairs found (16 bytes each). Measured
peak at a million hashes: see docs/dataset.md.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

HASH_BITS = 64
PAIR_BLOCK = 1 << 22       # candidate pairs expanded at a time (bounds the working memory)
DIRECT_BITS = 24          # bands up to this wide are looked up in a table of bucket starts
# Rough costs (ns) of the vectorised operations, used only to choose the method and the bands.
_TABLE_COST = 15.0         # one lookup of one hash in a band's bucket table
_SEARCH_COST = 150.0       # one binary search (bands wider than DIRECT_BITS)
_PAIR_COST = 15.0          # one candidate pair gathered and checked
_BRUTE_COST = 1.5          # one pair in the blocked all-pairs comparison


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values)
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _band_widths(bands: int) -> list[int]:
    base, extra = divmod(HASH_BITS, bands)
    return [base + (1 if index < extra else 0) for index in range(bands)]


def _probes(width: int, radius: int) -> int:
    return sum(math.comb(width, k) for k in range(min(radius, width) + 1))


def index_cost(n: int, threshold: int, bands: int) -> float:
    """Expected work (arbitrary units) of the banded index for ``n`` uniformly spread hashes."""
    radius = threshold // bands
    cost = 0.0
    for width in _band_widths(bands):
        probes = _probes(width, radius)
        lookup = _TABLE_COST if width <= DIRECT_BITS else _SEARCH_COST
        cost += n * probes * (lookup + _PAIR_COST * n / 2.0 ** width)
        cost += 2.0 * 2 ** width if width <= DIRECT_BITS else 0.0  # building the table
    return cost


def best_bands(n: int, threshold: int) -> int:
    """The number of bands with the least expected work (more than threshold + 1 never helps)."""
    return min(range(1, min(threshold + 1, HASH_BITS) + 1), key=lambda m: index_cost(n, threshold, m))


def choose_method(n: int, threshold: int) -> tuple[str, int]:
    """("brute", 0) or ("index", bands), whichever is expected to be cheaper."""
    bands = best_bands(n, threshold)
    if index_cost(n, threshold, bands) < _BRUTE_COST * n * n / 2.0:
        return "index", bands
    return "brute", 0


def _flips(width: int, radius: int):
    """Every bit mask over ``width`` bits with at most ``radius`` bits set, as uint64."""
    for count in range(min(radius, width) + 1):
        for bits in itertools.combinations(range(width), count):
            yield np.uint64(sum(1 << bit for bit in bits))


def _close_pairs(values: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: int):
    keep = left < right
    left, right = left[keep], right[keep]
    close = popcount(values[left] ^ values[right]) <= threshold
    return left[close], right[close]


def _brute_edges(values: np.ndarray, threshold: int):
    n = len(values)
    rows = max(1, PAIR_BLOCK // max(n, 1))
    found = []
    for start in range(0, n - 1, rows):
        stop = min(n - 1, start + rows)
        block = values[start:stop, None] ^ values[None, :]
        left, right = np.nonzero(popcount(block.ravel()).reshape(block.shape) <= threshold)
        left = left + start
        keep = left < right
        found.append((left[keep], right[keep]))
    return found


def _band_lookup(ordered: np.ndarray, width: int):
    """A function giving, for query band values, (first position, count) in the sorted band."""
    if width <= DIRECT_BITS:
        starts = np.zeros((1 << width) + 1, np.int64)
        np.cumsum(np.bincount(ordered, minlength=1 << width), out=starts[1:])

        def direct(query):
            low = starts[query]
            return low, starts[query + 1] - low

        return direct

    def search(query):
        low = np.searchsorted(ordered, query, side="left")
        return low, np.searchsorted(ordered, query, side="right") - low

    return search


def _index_edges(values: np.ndarray, threshold: int, bands: int):
    found = []
    radius = threshold // bands
    shift = 0
    for width in _band_widths(bands):
        mask = np.uint64((1 << width) - 1)
        band = (values >> np.uint64(shift)) & mask
        if width <= DIRECT_BITS:
            band = band.astype(np.int64)  # table indices
        shift += width
        order = np.argsort(band, kind="stable")
        lookup = _band_lookup(band[order], width)
        for flip in _flips(width, radius):
            low, counts = lookup(band ^ flip.astype(band.dtype))
            hits = np.flatnonzero(counts)
            if not len(hits):
                continue
            # expand (query, candidate) pairs block by block so memory stays bounded
            ends = np.cumsum(counts[hits])
            start = 0
            while start < len(hits):
                limit = (ends[start - 1] if start else 0) + PAIR_BLOCK
                stop = max(start + 1, int(np.searchsorted(ends, limit, side="right")))
                part = hits[start:stop]
                sizes = counts[part]
                left = np.repeat(part, sizes)
                first = np.repeat(np.cumsum(sizes) - sizes, sizes)
                right = order[np.repeat(low[part], sizes) + np.arange(len(left)) - first]
                found.append(_close_pairs(values, left, right, threshold))
                start = stop
    return found


def near_duplicate_groups(hashes, threshold: int, method: str = "auto") -> list[list[int]]:
    """Indices of ``hashes`` grouped by near-duplicate links (distance <= threshold, transitively).

    Groups of one are left out; members are in ascending order and groups are ordered by their
    first member, so the result depends only on the hashes. ``method`` is "auto", "index" or
    "brute" (the last two exist for tests and benchmarks).
    """
    if not 0 <= threshold <= HASH_BITS:
        raise ValueError(f"threshold must be between 0 and {HASH_BITS} bits, got {threshold}")
    if len(hashes) == 0:
        return []
    values, inverse = np.unique(np.asarray(hashes, dtype=np.uint64), return_inverse=True)
    inverse = inverse.ravel()
    n = len(values)
    if method == "auto":
        method, bands = choose_method(n, threshold)
    elif method == "index":
        bands = best_bands(max(n, 1 << 20), threshold)
    elif method == "brute":
        bands = 0
    else:
        raise ValueError(f"unknown method {method!r}")
    found = _brute_edges(values, threshold) if method == "brute" else _index_edges(values, threshold, bands)
    labels = _components(n, found)[inverse]
    order = np.argsort(labels, kind="stable")  # original indices, grouped, ascending within a group
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    groups = [order[a:b].tolist() for a, b in zip(starts, np.r_[starts[1:], len(order)]) if b - a > 1]
    groups.sort(key=lambda members: members[0])
    return groups


def _components(n: int, found) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes given blocks of (left, right) edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if found:
        left = np.concatenate([pair[0] for pair in found])
        right = np.concatenate([pair[1] for pair in found])
    else:
        left = right = np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(left), np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1]
