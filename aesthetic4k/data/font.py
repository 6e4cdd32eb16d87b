"""A 5 x 7 bitmap font of our own for the sample set's printed text, and its exact anti-aliased rendering."""
from __future__ import annotations

import numpy as np

from aesthetic4k.data.raster import fill_rectangles

# each glyph: 7 rows of 5 cells, '#' inked
_GLYPHS = {
    "a": ".....|.....|.###.|....#|.####|#...#|.####", "b": "#....|#....|####.|#...#|#...#|#...#|####.",
    "c": ".....|.....|.####|#....|#....|#....|.####", "d": "....#|....#|.####|#...#|#...#|#...#|.####",
    "e": ".....|.....|.###.|#...#|#####|#....|.###.", "f": "..##.|.#...|####.|.#...|.#...|.#...|.#...",
    "g": ".....|.####|#...#|#...#|.####|....#|.###.", "h": "#....|#....|####.|#...#|#...#|#...#|#...#",
    "i": "..#..|.....|.##..|..#..|..#..|..#..|.###.", "j": "...#.|.....|..##.|...#.|...#.|#..#.|.##..",
    "k": "#....|#....|#..#.|#.#..|##...|#.#..|#..#.", "l": ".##..|..#..|..#..|..#..|..#..|..#..|.###.",
    "m": ".....|.....|##.#.|#.#.#|#.#.#|#.#.#|#.#.#", "n": ".....|.....|####.|#...#|#...#|#...#|#...#",
    "o": ".....|.....|.###.|#...#|#...#|#...#|.###.", "p": ".....|####.|#...#|#...#|####.|#....|#....",
    "q": ".....|.####|#...#|#...#|.####|....#|....#", "r": ".....|.....|#.##.|##..#|#....|#....|#....",
    "s": ".....|.....|.####|#....|.###.|....#|####.", "t": ".#...|.#...|####.|.#...|.#...|.#..#|..##.",
    "u": ".....|.....|#...#|#...#|#...#|#..##|.##.#", "v": ".....|.....|#...#|#...#|#...#|.#.#.|..#..",
    "w": ".....|.....|#...#|#.#.#|#.#.#|#.#.#|.#.#.", "x": ".....|.....|#...#|.#.#.|..#..|.#.#.|#...#",
    "y": ".....|#...#|#...#|#...#|.####|....#|.###.", "z": ".....|.....|#####|...#.|..#..|.#...|#####",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#", "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
    "D": "####.|#...#|#...#|#...#|#...#|#...#|####.", "E": "#####|#....|#....|####.|#....|#....|#####",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#", "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "L": "#....|#....|#....|#....|#....|#....|#####", "N": "#...#|##..#|#.#.#|#..##|#...#|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.", "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..", "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
    " ": ".....|.....|.....|.....|.....|.....|.....",
}
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6        # cells; ADVANCE leaves one blank column between letters
# (row, column) of every inked cell, per character
_CELLS = {ch: np.array([(r, c) for r, row in enumerate(art.split("|")) for c, mark in enumerate(row) if mark == "#"],
                       np.float64).reshape(-1, 2) for ch, art in _GLYPHS.items()}
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def text_width(length: int, cell: float) -> float:
    """Width in pixels of ``length`` characters at ``cell`` pixels per font cell."""
    return length * ADVANCE * cell


def text_mask(h: int, w: int, lines) -> np.ndarray:
    """Ink coverage in [0, 1] of ``lines`` = [(text, left x, top y, cell px), ...] on an h x w image."""
    mask = np.zeros((h, w), np.int64)
    for cell in sorted({line[3] for line in lines}):
        xs, ys = [], []
        for text, left, top, size in lines:
            if size != cell:
                continue
            for position, ch in enumerate(text):
                cells = _CELLS[ch]
                xs.append(left + (position * ADVANCE + cells[:, 1]) * cell)
                ys.append(top + cells[:, 0] * cell)
        if xs:
            fill_rectangles(mask, np.concatenate(xs), np.concatenate(ys), cell)
    return np.minimum(mask, 4096).astype(np.float64) * (1.0 / 4096.0)
