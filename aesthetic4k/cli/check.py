"""a4k-check: compare a results.csv row with a baseline; exit 0 (no regression), 1 (regression), 2 (bad input)."""
from __future__ import annotations

import argparse
import sys

from aesthetic4k.cli.common import Parser, run_main
from aesthetic4k.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="a4k-check",
        description="Compare the rows of RESULTS (written by a4k-eval) with the rows of the same "
                    "generator/dataset/size in a baseline results file, honouring each metric's direction "
                    "(GLCM Score, CLIPScore, Aesthetics: higher is better; Compression Ratio, FID: lower is "
                    "better). Exit status: 0 nothing regressed beyond its tolerance, 1 something did, "
                    "2 bad input.")
    parser.add_argument("results", metavar="RESULTS", help="results.csv of the run to check")
    parser.add_argument("--baseline", required=True, metavar="FILE", help="results.csv holding the baseline row(s)")
    parser.add_argument("--tolerance", metavar="LIST",
                        help="allowed worsening per metric, absolute or relative to the baseline, e.g. "
                             "glcm_score=0.01,fid=2%%; metrics not listed may not get worse at all")
    parser.add_argument("--metrics", metavar="LIST",
                        help="comma list of metrics to compare (default: every metric the baseline row has)")
    parser.add_argument("--row", metavar="GENERATOR/DATASET/SIZE",
                        help="check only this row of RESULTS (default: every row)")
    parser.add_argument("--baseline-row", metavar="GENERATOR/DATASET/SIZE",
                        help="compare with this baseline row instead of the one with the same key")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also append the tables as Markdown to FILE (e.g. $GITHUB_STEP_SUMMARY)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_main("a4k-check", lambda: _check(args))


def _check(args) -> int:
    from aesthetic4k.check import REGRESSION, format_markdown, format_report, run_check

    checks = run_check(args.results, args.baseline, args.tolerance, args.metrics, args.row, args.baseline_row)
    if args.markdown:
        try:
            with open(args.markdown, "a", encoding="utf-8") as handle:
                handle.write(format_markdown(checks) + "\n")
        except OSError as exc:
            raise UserError(f"{args.markdown}: cannot append the Markdown summary ({exc.strerror})") from None
    print(format_report(checks))
    regressions = [(check.current.key, c.metric) for check in checks for c in check.comparisons
                   if c.verdict == REGRESSION]
    compared = sum(len(check.comparisons) for check in checks)
    if regressions:
        listed = ", ".join(f"{metric} ({key})" for key, metric in regressions)
        print(f"\na4k-check: {REGRESSION}: {listed} got worse beyond tolerance")
        return 1
    print(f"\na4k-check: OK, no regression ({compared} metric value(s) compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
