"""The README's integration snippets run as written (in a fresh folder, the default data root
./runicorn-data) and each leaves a finished run with metrics that the V2 API shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shown import shown_all

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Framework integrations, system metrics, resume"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[: section.index("\n## ", len(SECTION))]
    return PYTHON_BLOCK.findall(section)


# The frameworks' advice for real trainings (workers, small batch counts, log intervals) and
# Lightning 2.6's use of a torch API deprecated in 2.13.
@pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")
@pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning")
def test_every_snippet_runs_and_leaves_a_finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks()
    assert len(blocks) == 7
    monkeypatch.chdir(tmp_path)
    for var in ("RUNICORN_LITE_ROOT", "RUNICORN_DIR", "RUNICORN_LITE_SYSTEM_METRICS"):
        monkeypatch.delenv(var, raising=False)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})  # the README's own code
    runs = {r.experiment["name"]: r for r in shown_all(tmp_path / "runicorn-data").values()}
    assert set(runs) == {"lightning", "transformers", "keras", "xgboost", "lightgbm", "resumable", "runicorn"}
    for name, run in runs.items():
        assert run.status == "finished", name
        assert run.detail["metrics_summary"]["total_data_points"] > 0, name
        assert run.experiment["project"] == "readme"
    assert sorted(runs["resumable"].curve("loss")) == [1, 2]
    assert "sys/cpu_percent" in runs["resumable"].series
    assert runs["runicorn"].experiment["alias"] == "drop-in" and runs["runicorn"].params["lr"] == 0.01
