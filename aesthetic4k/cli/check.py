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
                    "better). Exit status: 0 nothing regressed beyond noise and tolerance, 1 something did or "
                    "a metric of the baseline row has no value in the run (unless --allow-missing), "
                    "2 bad input or rows measured under different protocols. With per-image data for both "
                    "rows (a4k-eval --per-image) over the same images, each difference is judged by a paired "
                    "bootstrap: worse with an interval that includes 0 is 'worse, within noise'.")
    parser.add_argument("results", metavar="RESULTS", help="results.csv of the run to check")
    parser.add_argument("--baseline", required=True, metavar="FILE", help="results.csv holding the baseline row(s)")
    parser.add_argument("--tolerance", metavar="LIST",
                        help="allowed worsening per metric, absolute or relative to the baseline, e.g. "
                             "glcm_score=0.01,fid=2%%; metrics not listed may not get worse at all")
    parser.add_argument("--metrics", metavar="LIST",
                        help="comma list of metrics to compare (default: every metric the baseline row has)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="a metric of the baseline row that has no value in the run is listed as not "
                             "compared instead of failing the check (exit 1 by default)")
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
    from aesthetic4k.check import MISSING, NOISE, REGRESSION, format_markdown, format_report, run_check

    checks = run_check(args.results, args.baseline, args.tolerance, args.metrics, args.row, args.baseline_row)
    missing = [(check.current.key, metric) for check in checks for metric in check.skipped]
    compared = sum(len(check.comparisons) for check in checks)
    if not compared and args.allow_missing:
        raise UserError(f"{args.results}: no metric value in common with the baseline row(s) to compare "
                        f"(missing: {', '.join(metric for _, metric in missing)})")
    if args.markdown:
        _append(args.markdown, format_markdown(checks) + "\n")
    print(format_report(checks))
    regressions = [(check.current.key, c.metric) for check in checks for c in check.comparisons
                   if c.verdict == REGRESSION]
    if regressions:
        listed = ", ".join(f"{metric} ({key})" for key, metric in regressions)
        print(f"\na4k-check: {REGRESSION}: {listed} got worse beyond tolerance")
    if missing and not args.allow_missing:
        listed = ", ".join(f"{metric} ({key})" for key, metric in missing)
        print(f"\na4k-check: {MISSING}: {listed} has no value in the run; a metric that vanished fails the "
              "check (--allow-missing lists it as not compared instead)")
    if regressions or (missing and not args.allow_missing):
        return 1
    noise = sum(c.verdict == NOISE for check in checks for c in check.comparisons)
    within = f", {noise} worse within noise" if noise else ""
    print(f"\na4k-check: OK, no regression ({compared} metric value(s) compared{within})")
    return 0


def _append(path: str, text: str) -> None:
    """Append to a regular file (created when missing); a FIFO, device or folder is refused unopened."""
    from aesthetic4k_metrics.file_kinds import output_problem

    problem = output_problem(path)
    if problem:
        raise UserError(f"{path}: {problem}; cannot append the Markdown summary there")
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot append the Markdown summary ({exc.strerror or exc})") from None


if __name__ == "__main__":
    sys.exit(main())
