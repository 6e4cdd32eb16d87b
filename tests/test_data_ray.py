"""`a4k-data build --distributor ray` on a local Ray instance with 2 CPUs started by the test:
the same dataset as the local build, and an interrupted build resumes without redoing work."""
from __future__ import annotations

import pytest

from aesthetic4k.data.build import build
from aesthetic4k.data.build_state import ShardStore
from tests.test_data_build import manifest, options
from tests.test_data_scale import dataset_files, varied_source  # noqa: F401  (fixture)

try:
    import ray
except ImportError as exc:  # the optional extra: pip install 'aesthetic4k[ray]'
    pytest.skip(f"Ray is not installed ({exc}); pip install 'aesthetic4k[ray]'", allow_module_level=True)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_ray_build_equals_the_local_build_and_resumes(tmp_path, varied_source, local_ray, monkeypatch):  # noqa: F811
    local = tmp_path / "local"
    build(options(varied_source, local, workers=2, eval_count=4))
    out = tmp_path / "ray"
    summary = build(options(varied_source, out, distributor="ray", workers=None, eval_count=4))
    assert summary["settings"]["distributor"] == "ray" and summary["settings"]["workers"] == 2
    assert dataset_files(out) == dataset_files(local)
    assert ray.is_initialized()  # a Ray the build did not start is left running

    # interrupted after the first write batches came back: the driver stops, the tasks that had
    # finished recorded their outputs, and the re-run writes only what is missing
    import aesthetic4k.data.distribute as distribute

    real_map = distribute.RayDistributor.map

    def interrupted_map(self, function, batches, labels):
        for count, result in enumerate(real_map(self, function, batches, labels)):
            yield result
            if function.__name__ == "write_batch" and count == 1:
                raise KeyboardInterrupt

    again = tmp_path / "ray-again"
    monkeypatch.setattr(distribute.RayDistributor, "map", interrupted_map)
    with pytest.raises(KeyboardInterrupt):
        build(options(varied_source, again, distributor="ray", eval_count=4))
    monkeypatch.undo()
    assert not (again / "manifest.jsonl").exists()
    recorded = ShardStore(again / ".a4k-build" / "outputs", ("output",)).items
    assert recorded
    submitted = []

    def counting_map(self, function, batches, labels):
        if function.__name__ == "write_batch":
            submitted.extend(job for batch in batches for job in batch[2])
        yield from real_map(self, function, batches, labels)

    monkeypatch.setattr(distribute.RayDistributor, "map", counting_map)
    summary = build(options(varied_source, again, distributor="ray", eval_count=4))
    assert summary["work"]["scan"]["done"] == 0
    redone = {action["output"] for job in submitted for action in job["actions"]}
    assert redone and not redone & {key[0] for key in recorded}
    assert dataset_files(again) == dataset_files(local)
    assert manifest(again) == manifest(local)
