"""The authors' GLCM Score / Compression Ratio loop, rewritten from docs/protocol.md to be timed as a process.

What the published numbers come from (the upstream ``eval.py``, reproduced here, not copied):
every file of a folder is read with ``cv2.imread``, converted with OpenCV to grey and divided by
4 (64 levels); the size x size image is cut into 64 x 64 patches, each patch's GLCM is built
by scikit-image and scored with ``shannon_entropy`` (tests/glcm_reference.py); the image score
is the mean over its patches, the set score the mean over images; the Compression Ratio is
size * size * 3 * N over the sum of the file sizes. Prints one JSON line.

    python -m benchmarks.upstream_eval FOLDER SIZE
"""
import json
import os
import sys

import cv2
import numpy as np

from tests.glcm_reference import PATCH, patch_value


def main(folder: str, size: int) -> dict:
    scores, file_bytes = [], []
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        grey = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY) // 4
        file_bytes.append(os.path.getsize(path))
        n = size // PATCH
        total = 0.0
        for i in range(n):
            for j in range(n):
                total += patch_value(grey[i * PATCH:(i + 1) * PATCH, j * PATCH:(j + 1) * PATCH])
        scores.append(total / (n * n))
    ratio = size * size * 3 * len(file_bytes) / sum(file_bytes) if file_bytes else float("nan")
    return {"glcm_score": float(np.mean(scores)) if scores else float("nan"), "compression_ratio": ratio,
            "n_images": len(scores)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
