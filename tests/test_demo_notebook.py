"""The demo notebook (the main job's notebook) runs end to end on the built-in default model."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.ipynb"


@pytest.mark.smollm2
def test_demo_notebook_executes_without_errors(tmp_path):
    nb = nbformat.read(DEMO, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "Paris" in text  # test_prompt's report on the default model
    assert "clean logit diff" in text
    assert "Italy run: Paris - Rome" in text and "estimate" in text  # the SAE feature section
    widget_views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    # residual explorer, head heatmap + attention inspector, patching heatmap, patcher,
    # and the SAE section's residual explorer, patcher and feature dashboard
    assert len(widget_views) >= 8
