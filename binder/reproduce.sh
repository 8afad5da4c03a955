#!/usr/bin/env bash
# What mybinder.org does with binder/, reproduced here (`make binder-check`, and CI):
# the tracked files in a fresh directory, a fresh environment on the Python of runtime.txt,
# `pip install -r binder/requirements.txt`, then postBuild; then chapter 01 and the heaviest
# tiny chapter headless, each failing the check if it fails or peaks above Binder's memory
# limit (2 GB; the chapter's own record of its peak resident memory, VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."
CAP_MB=${BINDER_MEMORY_MB:-2048}
HEAVIEST=${BINDER_HEAVIEST:-chapters/05_rlaif.py}  # the tiny chapter with the highest peak (about 770 MB)
work=build/binder
rm -rf "$work" && mkdir -p "$work/repo"
git ls-files -z | xargs -0 cp --parents -t "$work/repo"  # as Binder clones the repository
python="python$(sed 's/^python-//' binder/runtime.txt)"
"$python" -m venv "$work/env"
# shellcheck disable=SC1091
source "$work/env/bin/activate"
cd "$work/repo"
pip install -q -r binder/requirements.txt
bash binder/postBuild
for chapter in chapters/01_rl_basics.py "$HEAVIEST"; do
    echo "== $chapter on Binder's environment"
    log="$(basename "$chapter" .py).log"
    SURVEY_RESULTS_DIR=results MPLBACKEND=Agg HF_HUB_OFFLINE=1 python "$chapter" > "$log" 2>&1 || { tail -40 "$log"; exit 1; }
    python - "$chapter" "$CAP_MB" <<'PY'
import json, pathlib, sys
chapter, cap = pathlib.Path(sys.argv[1]).stem, float(sys.argv[2])
record = json.loads(pathlib.Path("results", f"{chapter}.json").read_text())
print(f"{chapter}: peak {record['peak_rss_mb']:.0f} MB (Binder's limit {cap:.0f} MB), {record['wall_seconds']:.0f} s")
sys.exit(record["peak_rss_mb"] > cap)
PY
done
