"""The fine-detail path of a4k-eval as a plain script: one pass of ``measure_files`` over a folder.

Timed as a whole process next to the upstream loop; it shows what scoring a folder costs with
this toolkit's own code alone (no CLI, no results file). Prints one JSON line.

    python -m benchmarks.detail_script FOLDER
"""
import json
import os
import sys

from aesthetic4k_metrics.detail import CompressionRatio, GLCMScore, measure_files


def main(folder: str) -> dict:
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    glcm, ratio = GLCMScore(), CompressionRatio(mode="file")
    measured = list(measure_files(paths, jpeg_mode="file"))
    glcm.add(measured)
    ratio.add(measured)
    return {"glcm_score": glcm.compute(), "compression_ratio": ratio.compute(), "n_images": len(measured)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
