"""`make bench`: run every benchmarks/bench_*.py module's ``run()`` and print its figures."""
import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv):
    wanted = set(argv)
    folder = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        if wanted and info.name not in wanted and info.name[len("bench_"):] not in wanted:
            continue
        print(f"== {info.name}", flush=True)
        importlib.import_module(f"benchmarks.{info.name}").run()


if __name__ == "__main__":
    main(sys.argv[1:])
