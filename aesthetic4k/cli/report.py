"""a4k-report: re-draw the HTML report of a run, or put two runs of one dataset side by side."""
from __future__ import annotations

import argparse
import sys

from aesthetic4k.cli.common import Parser, run_main
from aesthetic4k.errors import UserError


def build_parser() -> Parser:
    parser = Parser(
        prog="a4k-report",
        description="Write the HTML report of one run, or with two runs a comparison page: for every image "
                    "of the dataset both runs' crops and the reference crop at the same coordinates, "
                    "per-image values side by side, which run is better on each metric. A run is a report "
                    "folder written by a4k-eval --report (it keeps run.json), or a results.csv row whose "
                    "settings name such a folder: results.csv:GENERATOR/DATASET/SIZE (the row key may be "
                    "left out when the file has one row).",
        epilog="examples:  a4k-report report-upscale/ report-reference/ --out compare/\n"
               "           a4k-report results.csv:upscale/sample/2048 results.csv:reference/sample/2048 "
               "--out compare/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="one run (re-draw its report) or two runs of the same dataset and size (A, then B)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for index.html and its images/ (created; an earlier report there is replaced)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.runs) > 2:
        parser.error(f"give one or two runs, not {len(args.runs)}")
    return run_main("a4k-report", lambda: _write(args))


def _write(args) -> int:
    from aesthetic4k.report import load_run, write_comparison, write_report

    from aesthetic4k_metrics.file_kinds import named_output

    runs = [load_run(spec) for spec in args.runs]
    out = named_output(args.out, folder=True)      # a link to a folder: the report goes into its target
    try:
        if len(runs) == 1:
            page = write_report(runs[0], out, progress=not args.no_progress)
        else:
            page = write_comparison(runs[0], runs[1], out, progress=not args.no_progress)
    except OSError as exc:      # a full disk, a quota, a read-only folder: the earlier report there is unchanged
        raise UserError(f"{args.out}: cannot write the report ({exc.strerror or exc}); an earlier report there "
                        "is unchanged") from None
    print(f"a4k-report: wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
