"""``aesthetic4k.paper_results``: this folder installed as a data package (setup.cfg ``package_dir``).

Only ``reported.csv``, the numbers published in papers, ships with the package, so that
``a4k-leaderboard`` shows them outside a checkout too; the measured results and the generated
pages stay in the repository.
"""
