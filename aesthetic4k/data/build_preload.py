"""Imported once by the fork server of a local build's worker processes (see distribute.ProcessPool).

Everything imported or compiled here is inherited by every worker forked from the server, so
no worker pays for it again. The GLCM kernel is compiled only for builds that use the filter,
with numba's fork-safe ``workqueue`` threading layer (its OpenMP layer cannot survive a fork).
"""
import os

import aesthetic4k.data.build_work as build_work
import aesthetic4k.data.images  # noqa: F401  (Pillow)
import aesthetic4k.data.phash  # noqa: F401

import cv2  # noqa: F401  (imported here, never used before the fork: no thread pool to inherit)

if os.environ.get("A4K_BUILD_WARM_GLCM") == "1":
    import numba

    numba.config.THREADING_LAYER = "workqueue"
    build_work.warm_up_glcm()
