"""python -m survey_lib.report: a table of every chapter's headline metrics.

Defined for the foundation; the main job (`make book`) runs it after the chapters.
Reads results/*.json (see `survey_lib.book`) and prints a Markdown table, also written to
results/SUMMARY.md. "wall s" runs from each chapter's `Chapter(...)` cell to its end.
"""
from __future__ import annotations

import json
import sys

from .book import format_value, results_dir


def summary_table() -> str:
    records = [json.loads(p.read_text()) for p in sorted(results_dir().glob("[0-9][0-9]_*.json"))]
    if not records:
        raise SystemExit(f"no chapter results in {results_dir()}/; run the chapters first (make book)")
    lines = ["| chapter | headline metrics | wall s | peak RSS MB |", "|---|---|---|---|"]
    for r in records:
        metrics = "<br>".join(f"{k} = {format_value(v)}" for k, v in r["headline"].items())
        lines.append(f"| {r['chapter']} | {metrics} | {r['wall_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    table = summary_table()
    (results_dir() / "SUMMARY.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
    sys.exit(0)
