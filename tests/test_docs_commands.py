"""Every command shown in README.md and docs/*.md names real programs, flags, subcommands, config fields and files.

The commands come from the fenced ```sh / ```bash blocks (tests/doc_commands.py). Each is checked in this
process, without running it:
  - chatpose-* console scripts (setup.py's entry points) and `python -m chatpose_jax...`: the argv is parsed by
    the module's own absl flags, so an unknown flag, a bad value, a missing required flag, a wrong subcommand
    or a `--config.*` override naming a field the config file does not have fails (ml_collections loads the
    config file and applies the overrides, as the real parse does);
  - `python launch/launch.py`: its argparse parser, the `chatpose-train` command it would run (config fields
    as above), and the reviewed dry-run snapshot that tests/test_launch_targets.py renders for it;
  - `python launch/local.py ... -- COMMAND`: its parser, then COMMAND the same way;
  - `python launch/ablate.py`: its parser; with --dry_run it runs in-process and every command it prints is
    checked too;
  - `make TARGET [VAR=value]`: the Makefile has the target and the variable; DEMO_ARGS holds demo flags;
  - `pip install -e .[EXTRA]`: setup.py has the extra;
  - a `chatpose-train` command (also the one a launch.py command runs) names its data and a tokenizer,
    without which training stops at start;
  - every word naming a file of the repository (configs/..., launch/..., ...) names one that exists.
A command of any other program is "not checked" and must be listed in NOT_CHECKED below: a new one fails
until someone decides. Every relative link and image of those files must point to an existing file (and
heading, for `#anchor` links).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import sys
from pathlib import Path
from unittest import mock

import pytest
from absl import flags

from tests.cli_in_process import fresh_cli
from tests.doc_commands import REPO, all_commands, doc_files, fenced_blocks, heading_anchors, relative_links

SETUP = (REPO / "setup.py").read_text(encoding="utf-8")
SCRIPTS = dict(re.findall(r'"(chatpose-[\w-]+)=([\w.]+):\w+"', SETUP))
PYTHONS = ("python", "python3")
# `python -m PACKAGE` runs PACKAGE/__main__.py; its flags are defined in this module.
PACKAGE_MAINS = {"chatpose_jax.demo": "chatpose_jax.demo.run"}
# Makefile variables that pass flags on to a program.
MAKE_ARG_PROGRAMS = {"DEMO_ARGS": "chatpose_jax.demo.run"}
# Top-level folders of the repository: a command word starting with one of these names a file that must exist.
REPO_DIRS = ("configs", "launch", "tools", "docs", "tests", "chatpose_jax", "data_pipelines")
# Commands shown in the docs whose program this test does not know (each as Command.text). Empty: every
# command is checked. Add one only for an illustrative line that cannot be checked here.
NOT_CHECKED: set[str] = set()

COMMANDS = all_commands()


def _extras() -> set[str]:
    for node in ast.walk(ast.parse(SETUP)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXTRAS_REQUIRE" for t in node.targets):
            return {key.value for key in node.value.keys}
    raise AssertionError("setup.py has no EXTRAS_REQUIRE")


def _builders() -> dict[str, set[str]]:
    """chatpose-data's dataset names and each one's builder configs, read from the source (no TensorFlow import)."""
    package = REPO / "data_pipelines" / "builders"
    init = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    module_of = {
        alias.name: node.module.rsplit(".", 1)[-1]
        for node in init.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    (table,) = [n.value for n in init.body if isinstance(n, ast.Assign) and n.targets[0].id == "BUILDERS"]
    out = {}
    for key, value in zip(table.keys, table.values, strict=True):
        tree = ast.parse((package / f"{module_of[value.id]}.py").read_text(encoding="utf-8"))
        (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == value.id]
        configs = [
            kw.value.value
            for n in cls.body
            if isinstance(n, ast.Assign) and n.targets[0].id == "BUILDER_CONFIGS"
            for call in ast.walk(n.value)
            if isinstance(call, ast.Call)
            for kw in call.keywords
            if kw.arg == "name"
        ]
        out[key.value] = set(configs)
    return out


def _makefile() -> tuple[set[str], set[str]]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = {t for line in re.findall(r"^([\w.-][\w. -]*?)\s*:(?!=)", text, re.M) for t in line.split()}
    variables = set(re.findall(r"^([A-Za-z_]\w*)\s*[?:+]?=", text, re.M))
    return targets, variables


def parse_absl(module_name: str, argv: list[str]):
    """Parses argv with the absl flags `module_name` defines; returns (module, positional args, present flags).

    The module is imported afresh into a registry without other tools' flags (the demo's and the tools'
    names overlap, and other test files import them into this process)."""
    with fresh_cli(module_name) as module, mock.patch.object(sys, "argv", list(argv)):
        rest = flags.FLAGS(list(argv))  # ml_collections reads the --config.* overrides from sys.argv
        present = {name: flag.value for name, flag in flags.FLAGS._flags().items() if flag.present}
        return module, rest[1:], present


def parse_argparse(parser, argv: list[str]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return parser.parse_args(argv)
        except SystemExit:
            raise ValueError(err.getvalue().strip().splitlines()[-1]) from None


def _repo_paths(argv) -> list[str]:
    problems = []
    for word in argv:
        for part in re.split(r"[=,]", word):
            path = part.split(":", 1)[0]
            if path.split("/", 1)[0] in REPO_DIRS and "/" in path and not (REPO / path).exists():
                problems.append(f"{path} does not exist in the repository")
    return problems


def check_script(argv: list[str]) -> list[str]:
    module, rest, present = parse_absl(SCRIPTS[argv[0]], argv)
    subcommands = getattr(module, "SUBCOMMANDS", None)
    if subcommands is None:
        problems = [f"unexpected arguments {rest}"] if rest else []
        if argv[0] == "chatpose-train":
            problems += _names_its_data(present["config"])
        return problems
    if not rest or rest[0] not in subcommands:
        return [f"{argv[0]} needs one of the subcommands {', '.join(subcommands)}, got {rest}"]
    if argv[0] == "chatpose-data" and rest[0] == "prepare":
        builders = _builders()
        if len(rest) != 2 or rest[1] not in builders:
            return [f"chatpose-data prepare takes one of {sorted(builders)}, got {rest[1:]}"]
        config = present.get("builder_config")
        if config is not None and config not in builders[rest[1]]:
            return [f"{rest[1]} has no builder config {config!r} (has {sorted(builders[rest[1]])})"]
        return []
    return [f"unexpected arguments {rest[1:]}"] if len(rest) > 1 else []


def _names_its_data(config) -> list[str]:
    """A training run stops at start without its data and a tokenizer (train/input.py): the command must name them."""
    problems = []
    if not config.data.data_dir:
        problems.append("trains without data: set --config.data.data_dir")
    if not (config.data.tokenizer or config.init_checkpoint):
        problems.append("trains without a tokenizer: set --config.data.tokenizer or --config.init_checkpoint")
    return problems


def check_module(name: str, argv: list[str]) -> list[str]:
    if importlib.util.find_spec(name) is None:
        return [f"no module {name}"]
    name = PACKAGE_MAINS.get(name, name)
    if importlib.util.find_spec(name).submodule_search_locations is not None:
        return [f"{name} is a package: add the module defining its flags to PACKAGE_MAINS"]
    source = Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8")
    if "argparse" in source:
        module = importlib.import_module(name)
        if not callable(getattr(module, "parser", None)):
            return [f"{name} builds its argparse parser inside main(): expose it as parser() to check it"]
        parse_argparse(module.parser(), argv[1:])
        return []
    _, rest, _ = parse_absl(name, argv)
    return [f"unexpected arguments {rest}"] if rest else []


def check_launch(argv: list[str]) -> list[str]:
    from launch import launch

    flags_, overrides, extra = launch.split_argv(argv[1:])
    args = parse_argparse(launch.parser(), flags_)
    if args.program == "train" and args.config:
        return check(["chatpose-train", "--config", args.config, "--workdir", args.workdir or "w", *overrides, *extra])
    if args.program == "eval":
        return check(["chatpose-eval", *extra])
    return []


def check_local(argv: list[str]) -> list[str]:
    from launch import local

    started = []
    err = io.StringIO()
    with mock.patch.object(local, "launch", lambda command, *a: started.append(command) or 0):
        with contextlib.redirect_stderr(err):
            try:
                status = local.main(argv[1:])
            except SystemExit as e:
                status = e.code
    if status != 0 or not started:
        return [f"launch/local.py refuses it: {err.getvalue().strip()}"]
    return check(started[0])


def check_ablate(argv: list[str]) -> list[str]:
    from launch import ablate

    args = parse_argparse(ablate.parser(), argv[1:])
    if not (args.scale == "full" and args.dry_run and not args.collect):
        return []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = ablate.main(argv[1:])
    if status != 0:
        return [f"launch/ablate.py --dry_run exited with {status}"]
    return [problem for line in out.getvalue().splitlines() for problem in check(shlex.split(line))]


def check_make(argv: list[str]) -> list[str]:
    targets, variables = _makefile()
    problems = []
    for word in argv[1:]:
        if "=" in word:
            name, value = word.split("=", 1)
            if name not in variables:
                problems.append(f"the Makefile has no variable {name}")
            elif name in MAKE_ARG_PROGRAMS:
                problems += check_module(MAKE_ARG_PROGRAMS[name], ["make", *shlex.split(value)])
        elif word not in targets:
            problems.append(f"the Makefile has no target {word!r}")
    return problems


def check_pip(argv: list[str]) -> list[str]:
    match = re.fullmatch(r"\.\[([\w,-]+)\]", argv[-1])
    if list(argv[1:-1]) != ["install", "-e"] or not match:
        return ["only `pip install -e .[EXTRA]` is checked"]
    unknown = set(match.group(1).split(",")) - _extras()
    return [f"setup.py has no extra {sorted(unknown)}"] if unknown else []


SCRIPT_FILES = {"launch/launch.py": check_launch, "launch/local.py": check_local, "launch/ablate.py": check_ablate}


def check(argv: list[str]) -> list[str] | None:
    """Problems of one command (empty: fine), or None for a program this test does not check."""
    argv = list(argv)
    problems = _repo_paths(argv)
    if argv[0] in SCRIPTS:
        checker = check_script
    elif argv[0] in PYTHONS and argv[1:3] == ["-m", "pip"]:
        checker, argv = check_pip, argv[2:]
    elif argv[0] in PYTHONS and argv[1:2] == ["-m"] and len(argv) > 2:
        checker, argv = (lambda a: check_module(a[0], a)), argv[2:]
    elif argv[0] in PYTHONS and argv[1:2] and argv[1].endswith(".py"):
        if argv[1] not in SCRIPT_FILES:
            return problems + [f"no checker for {argv[1]}: add one to SCRIPT_FILES"]
        checker, argv = SCRIPT_FILES[argv[1]], argv[1:]
    elif argv[0] == "make":
        checker = check_make
    elif argv[0] == "pip":
        checker = check_pip
    else:
        return None
    try:
        return problems + checker(argv)
    except (Exception, SystemExit) as e:
        # absl's flag errors; ml_collections' (AttributeError, ValueError, ...) for an override of a missing
        # field or with a bad value; launch.py's SpecError; a script's own SystemExit.
        detail = str(e).strip().strip("'\"").replace("\\'", "'").replace("\\n", " ")
        return problems + [f"{type(e).__name__}: {detail}"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # config paths are relative to the repository, as the docs run them


def test_the_docs_show_commands():
    docs = {c.doc for c in COMMANDS}
    assert "README.md" in docs and len(docs) >= 4, docs
    assert {"make", "chatpose-train", "chatpose-eval", "chatpose-chat", "chatpose-convert"} <= {
        c.argv[0] for c in COMMANDS
    }


def test_every_code_block_names_its_language():
    """An untagged block would hide its commands from this test."""
    untagged = [f"{b.path.relative_to(REPO)}:{b.line}" for p in doc_files() for b in fenced_blocks(p) if not b.language]
    assert not untagged, f"fenced blocks without a language (```sh, ```python, ```text): {untagged}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.plain], ids=lambda c: c.where)
def test_command_matches_the_code(command):
    problems = check(command.argv)
    if problems:
        pytest.fail(f"{command.where}: {command.text}\n  " + "\n  ".join(problems), pytrace=False)


def test_unchecked_commands_are_exactly_the_known_ones():
    unchecked = {c.text for c in COMMANDS if not c.plain or check(c.argv) is None}
    assert unchecked == NOT_CHECKED, (
        f"new commands this test cannot check: {sorted(unchecked - NOT_CHECKED)}; "
        f"listed but gone: {sorted(NOT_CHECKED - unchecked)}. Make them plain commands of a checked program, "
        "or add them to NOT_CHECKED"
    )


def test_launch_commands_are_in_the_reviewed_snapshot():
    """tests/test_launch_targets.py renders each with --dry_run and compares it with this snapshot."""
    from tests.test_launch_targets import FIXED, SNAPSHOTS

    snapshot = (SNAPSHOTS / "launch_readme.txt").read_text(encoding="utf-8")
    headers = set(re.findall(r"^### (.*)$", snapshot, re.M))
    launches = [c for c in COMMANDS if c.argv[:2] in (("python", "launch/launch.py"), ("python3", "launch/launch.py"))]
    assert launches
    missing = [
        c.where
        for c in launches
        if f"python launch/launch.py {shlex.join(c.argv[2:])} {shlex.join(FIXED)}" not in headers
    ]
    assert not missing, f"launch commands not in tests/snapshots/launch_readme.txt (UPDATE_SNAPSHOTS=1): {missing}"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken = []
    for line, target in relative_links(doc):
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.exists():
            broken.append(f"{doc.relative_to(REPO)}:{line}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
            broken.append(f"{doc.relative_to(REPO)}:{line}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_checker_catches_mistakes():
    """The check itself: each kind of mistake in a command is reported."""
    base = ["chatpose-train", "--config", "configs/tiny.py", "--workdir", "/tmp/w", "--config.data.data_dir=/d"]
    base += ["--config.data.tokenizer=/t"]
    assert check(base + ["--config.optimizer.lr=1e-4"]) == []
    assert "lrr" in " ".join(check(base + ["--config.optimizer.lrr=1e-4"]))
    assert "bogus" in " ".join(check(base + ["--bogus"]))
    assert "without data" in " ".join(check(base[:5] + base[6:]))
    assert "nope.py" in " ".join(check(["chatpose-train", "--config", "configs/nope.py", "--workdir", "/tmp/w"]))
    assert check(["chatpose-convert", "import-hf", "--hf_dir", "a", "--out", "b"]) == []
    assert "subcommands" in " ".join(check(["chatpose-convert", "import-hff", "--hf_dir", "a", "--out", "b"]))
    assert "builder config" in " ".join(
        check(["chatpose-data", "prepare", "spg", "--builder_config", "hmr2", "--manual_dir", "a", "--data_dir", "b"])
    )
    assert "--out" in " ".join(check(["chatpose-eval", "--checkpoint", "c", "--data_dir", "d"]))  # required
    assert check(["make", "nosuchtarget"]) and check(["make", "demo", "DEMO_ARGS=--stepz 3"])
    assert check(["pip", "install", "-e", ".[nosuchextra]"])
    assert check(["python", "launch/launch.py", "tpu-vm", "--nosuchflag"])
    assert check(["python", "launch/local.py", "--num_processes", "2", "--", "chatpose-chat", "--bogus"])
    assert check(["python", "-m", "chatpose_jax.no_such_module"])
    assert check(["gcloud", "compute", "tpus", "list"]) is None
