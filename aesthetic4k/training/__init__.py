"""What the toolkit's trainers share: the data stream, checkpoint folders, the run log, an EMA.

- :mod:`aesthetic4k.training.data`: training images as tensors, a resumable shuffled record stream;
- :mod:`aesthetic4k.training.checkpoints`: ``checkpoint-<step>`` folders written whole or not at
  all, ``latest``, resuming, pruning, per-process progress;
- :mod:`aesthetic4k.training.run_log`: ``train_log.csv`` cut back on resume, TensorBoard;
- :mod:`aesthetic4k.training.ema`: an exponential moving average of weights.

Used by ``a4k-train`` (:mod:`aesthetic4k.wavelet.train`) and ``a4k-train-vae``
(:mod:`aesthetic4k.scvae.train`). Nothing here imports torch at import time.
"""
