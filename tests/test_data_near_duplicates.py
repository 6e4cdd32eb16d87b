"""The banded near-duplicate index gives exactly the groups of comparing every pair."""
from __future__ import annotations

import numpy as np
import pytest

from aesthetic4k.data.near_duplicates import choose_method, near_duplicate_groups


def reference_groups(hashes, threshold):
    """Every pair compared with Python integers, groups by union-find: the definition, written out."""
    values = [int(h) for h in hashes]
    parent = list(range(len(values)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            if bin(values[i] ^ values[j]).count("1") <= threshold:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups = {}
    for i in range(len(values)):
        groups.setdefault(root(i), []).append(i)
    return sorted(members for members in groups.values() if len(members) > 1)


def planted(rng, n, threshold, chains=60):
    """Random 63-bit hashes plus chains of copies each a few flips from the previous one."""
    hashes = rng.integers(0, 2**63, n, dtype=np.uint64)
    for _ in range(chains):
        index = int(rng.integers(0, n - 4))
        for step in range(1, 4):  # distances straddle the threshold: some links hold, some do not
            flips = rng.choice(63, size=int(rng.integers(max(threshold - 2, 0), threshold + 3)), replace=False)
            hashes[index + step] = hashes[index + step - 1] ^ np.uint64(sum(1 << int(b) for b in flips))
    hashes[5] = hashes[6]  # exact copies too
    return hashes


@pytest.mark.parametrize("threshold", [0, 1, 4, 8, 13, 24])
def test_index_equals_all_pairs(threshold):
    rng = np.random.default_rng(threshold)
    hashes = planted(rng, 700, threshold)
    expected = reference_groups(hashes, threshold)
    assert expected  # the planted chains make groups
    for method in ("index", "brute", "auto"):
        assert near_duplicate_groups(hashes, threshold, method=method) == expected, method


def test_groups_are_transitive_and_ordered():
    a = 0
    b = a ^ 0b111          # 3 bits from a
    c = b ^ (0b111 << 10)  # 3 bits from b, 6 from a
    far = (1 << 62) - 1
    hashes = [far, c, a, b, far ^ 1]
    assert near_duplicate_groups(hashes, 3) == [[0, 4], [1, 2, 3]]
    assert near_duplicate_groups(hashes, 3, method="index") == [[0, 4], [1, 2, 3]]
    assert near_duplicate_groups([], 8) == []
    assert near_duplicate_groups([7, 7, 7], 0) == [[0, 1, 2]]
    with pytest.raises(ValueError):
        near_duplicate_groups([1], 65)


def test_many_equal_hashes_cost_nothing():
    # a million copies of one picture collapse to one value before any pair is looked at
    hashes = np.zeros(1_000_000, np.uint64)
    hashes[-1] = 2**63 - 1  # 63 bits away
    groups = near_duplicate_groups(hashes, 8)
    assert len(groups) == 1 and len(groups[0]) == 999_999


def test_the_index_is_chosen_at_scale():
    assert choose_method(1_000, 8)[0] == "brute"
    method, bands = choose_method(1_000_000, 8)
    assert method == "index" and bands == 3
