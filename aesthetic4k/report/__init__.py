"""HTML reports of evaluation runs: one run (``a4k-eval --report DIR``) or two side by side (``a4k-report``).

Modules: ``single`` and ``compare`` assemble the pages; ``views`` turns each image into the small
files a page shows, with ``crops`` choosing where to look and cutting the windows; ``glcm_scale``
holds the fixed heat-map scale; ``run_data`` is what a report folder keeps of its run (so runs can
be compared later); ``folder`` makes a report appear whole or not at all.
"""
from aesthetic4k.report.compare import write_comparison
from aesthetic4k.report.run_data import REPORT_FILE, find_report, load_run
from aesthetic4k.report.single import write_report

__all__ = ["REPORT_FILE", "find_report", "load_run", "write_comparison", "write_report"]
