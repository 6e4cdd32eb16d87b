"""aesthetic4k_metrics.parallel: ordered results, bounded look-ahead, errors and early stops."""
import threading

import pytest

from aesthetic4k_metrics.parallel import ordered_map, ordered_stream


def test_ordered_map_and_stream_keep_input_order():
    items = list(range(23))
    assert ordered_map(lambda x: x * x, items, workers=3) == [x * x for x in items]
    assert list(ordered_stream(lambda x: -x, items, workers=3, ahead=4)) == [-x for x in items]
    assert list(ordered_stream(lambda x: -x, items, workers=1)) == [-x for x in items]


def test_stream_runs_at_most_ahead_items_before_the_consumer():
    started = []
    lock = threading.Lock()

    def work(x):
        with lock:
            started.append(x)
        return x

    consumed = 0
    for value in ordered_stream(work, range(40), workers=2, ahead=5):
        consumed += 1
        with lock:
            assert len(started) <= consumed + 5      # never more than `ahead` beyond what was taken
        assert value == consumed - 1
    assert consumed == 40


def test_stream_error_propagates_and_early_stop_starts_nothing_more():
    def work(x):
        if x == 7:
            raise ValueError("bad item 7")
        return x

    with pytest.raises(ValueError, match="bad item 7"):
        list(ordered_stream(work, range(30), workers=2, ahead=3))

    started = []
    stream = ordered_stream(lambda x: started.append(x) or x, range(100), workers=2, ahead=4)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert len(started) <= 3 + 4 + 2     # taken + look-ahead + the ones running when it stopped


def test_prepared_batches_are_in_order_and_sized():
    import numpy as np

    from aesthetic4k_metrics.pixel_input import embed_all, prepared_batches

    images = [np.full((4, 5, 3), i, np.uint8) for i in range(11)]
    batches = list(prepared_batches(images, lambda rgb, key: (int(rgb[0, 0, 0]), key), keys=[f"k{i}" for i in range(11)],
                                    workers=2, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 3]
    assert [item for b in batches for item in b] == [(i, f"k{i}") for i in range(11)]
    assert embed_all(images, lambda rgb, key: int(rgb[0, 0, 0]), lambda batch: [10 * x for x in batch],
                     workers=2, batch_size=3) == [10 * i for i in range(11)]
