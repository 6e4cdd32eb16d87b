"""a4k-leaderboard (`make leaderboard`): rebuild leaderboards/README.md and leaderboards/index.html."""
from __future__ import annotations

import sys

from aesthetic4k.cli.common import Parser, run_main


def build_parser() -> Parser:
    from aesthetic4k.leaderboard import DEFAULT_OUT_DIR, DEFAULT_REPORTED, DEFAULT_RESULTS_DIR

    parser = Parser(
        prog="a4k-leaderboard",
        description="Build the leaderboard (README.md table per dataset and size, and a self-contained "
                    "sortable index.html with plots) from results.csv files written by a4k-eval. "
                    "A file that fails validation is skipped and named with its problem on stderr, as is a "
                    "generator/dataset/size found in two files (the newer row is kept); the output is still "
                    "written and the exit status is 0 (1 with --strict).")
    parser.add_argument("--results", metavar="DIR",
                        help=f"folder of results .csv files (default: {DEFAULT_RESULTS_DIR}; "
                             "when that folder does not exist, only reported rows are shown)")
    parser.add_argument("--reported", metavar="FILE",
                        help=f"numbers published in papers, shown apart from measured rows (default: "
                             f"{DEFAULT_REPORTED} when the current folder has one, else the papers' numbers "
                             "that ship with the package; a FILE that does not exist is skipped)")
    parser.add_argument("--out", default=str(DEFAULT_OUT_DIR), metavar="DIR",
                        help="where README.md and index.html are written, created if needed (default: %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a file was skipped or duplicate rows were merged (for CI)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_main("a4k-leaderboard", lambda: _build(args))


def _build(args) -> int:
    from aesthetic4k.leaderboard import DEFAULT_RESULTS_DIR
    from aesthetic4k.leaderboard_page import build

    results = args.results
    if results is None:
        # A fresh clone has no results folder until a first run is checked in: not an error.
        results = DEFAULT_RESULTS_DIR if DEFAULT_RESULTS_DIR.is_dir() else None
        if results is None:
            print(f"a4k-leaderboard: no {DEFAULT_RESULTS_DIR} folder: only reported rows", file=sys.stderr)
    from aesthetic4k.leaderboard import default_reported

    collection = build(results, args.reported or default_reported(), args.out)
    for problem in collection.problems:
        print(f"a4k-leaderboard: warning: {problem}", file=sys.stderr)
    print(f"a4k-leaderboard: wrote {args.out}/README.md and {args.out}/index.html "
          f"({len(collection.measured)} measured, {len(collection.reported)} reported rows"
          + (f", {len(collection.problems)} warning(s)" if collection.problems else "") + ")")
    return 1 if args.strict and collection.problems else 0


if __name__ == "__main__":
    sys.exit(main())
