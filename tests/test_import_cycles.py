"""tools/import_cycles.py: no module of the project imports one that imports it back."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_cycles", REPO / "tools" / "import_cycles.py")
import_cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_cycles)


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_chatpose_jax_and_data_pipelines_have_no_import_cycle(capsys):
    code = import_cycles.main(["chatpose_jax", "data_pipelines", "--root", str(REPO)])
    assert code == 0, capsys.readouterr().err


def test_an_import_hidden_in_a_function_still_closes_a_cycle(tmp_path, capsys):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/train/__init__.py": "",
            "pkg/train/loop.py": "from pkg.train import tasks\n",
            "pkg/train/tasks.py": "def build():\n    from . import loop\n    return loop\n",
            "pkg/other.py": "import pkg.train.loop\n",
        },
    )
    assert import_cycles.main(["pkg", "--root", str(tmp_path)]) == 1
    assert "import cycle: pkg.train.loop -> pkg.train.tasks -> pkg.train.loop" in capsys.readouterr().err


def test_a_cycle_through_a_relative_parent_import_and_an_attribute_import_is_found(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .sub.b import helper\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "def helper():\n    import pkg.c.thing\n",
            "pkg/c.py": "from . import a\nthing = 1\n",
        },
    )
    graph = import_cycles.import_graph(str(tmp_path), ["pkg"])
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"}, graph
    assert import_cycles.cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_modules_without_a_cycle_pass(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "import os\nfrom pkg import b\n",
            "pkg/b.py": "def f():\n    import json\n",
        },
    )
    assert import_cycles.cycles(import_cycles.import_graph(str(tmp_path), ["pkg"])) == []
