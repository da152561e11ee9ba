"""Every notebook in ``notebooks/`` runs top to bottom against a scratch PostGIS database.

The notebooks commit what they import, so each runs in a database of its own on the test
server (created and dropped here), named to the kernel by ``WANGGE_DATABASE_URL``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT
from tests.scratch import scratch_database

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# A resource the page would load, plain or escaped in folium's iframe; plain links do not count.
EXTERNAL = re.compile(
    r"src=(\"|&quot;|')https?://|(<|&lt;)link[^>]+href=(\"|&quot;|')https?://", re.IGNORECASE
)


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "nb") as url:
        yield url


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def _executed(path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("WANGGE_DATABASE_URL", url)
    notebook = _read(path)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_error_and_draws_offline(
    path: Path, scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = _executed(path, scratch_url, monkeypatch)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert html
    assert not [h for h in html if EXTERNAL.search(h)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_project_code_from_gis_and_layers_only(path: Path) -> None:
    notebook = _read(path)
    project = {"gis", "layers", "api", "tests", "bench"}
    used = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                used.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                used.update(alias.name.split(".")[0] for alias in node.names)
    assert used & project <= {"gis", "layers"}
