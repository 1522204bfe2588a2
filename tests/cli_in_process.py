"""Command-line tools run in this process: each tool's module imported into a private copy of absl's FLAGS.

The tools share flag names (--out, --checkpoint, ...), so `fresh_cli` imports one tool's module at a
time and forgets its flags afterwards. `run_tool` runs a console-script command line (as
launch/ablate.py builds them) through the tool's `main`, without a new Python process.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys

from absl import app, flags
from absl import logging as absl_logging

app.define_help_flags()  # --help, --helpfull: `absl.app.run` defines them in a tool's own process

# Console scripts (setup.py's entry points) and the modules whose `main` they run.
CONSOLE_SCRIPTS = {
    "chatpose-train": "chatpose_jax.cli.train",
    "chatpose-eval": "chatpose_jax.cli.eval",
    "chatpose-chat": "chatpose_jax.cli.chat",
    "chatpose-predict": "chatpose_jax.cli.predict",
    "chatpose-convert": "chatpose_jax.cli.convert",
    "chatpose-data": "data_pipelines.cli",
    "chatpose-compile": "chatpose_jax.cli.compile",
    "chatpose-web": "chatpose_jax.cli.web",
}


@contextlib.contextmanager
def private_flags():
    """absl's global FLAGS with copied registries: modules imported inside define their flags there only;
    the real registry is restored on leaving."""
    registry = flags.FLAGS
    saved = dict(registry.__dict__)
    for key, value in saved.items():
        if isinstance(value, dict):
            registry.__dict__[key] = {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
        elif isinstance(value, (set, list)):
            registry.__dict__[key] = type(value)(value)
    try:
        yield registry
    finally:
        registry.__dict__.clear()
        registry.__dict__.update(saved)


@contextlib.contextmanager
def fresh_cli(module_name: str):
    """The tool's module imported afresh into a private copy of absl's FLAGS holding absl's own flags only.

    Tools (and the demo) share flag names, so each import gets a registry without the others' flags;
    the real registry, the parse state and the logging verbosity are restored on leaving.
    """
    registry = flags.FLAGS
    was_parsed = registry.is_parsed()
    verbosity = absl_logging.get_verbosity()
    previous = sys.modules.pop(module_name, None)
    try:
        with private_flags():
            for module, defined in list(registry.flags_by_module_dict().items()):
                if not module.startswith("absl"):
                    for flag in list(defined):  # deleting a flag edits this list
                        if flag.name in registry:
                            delattr(registry, flag.name)
            yield importlib.import_module(module_name)
    finally:
        sys.modules.pop(module_name, None)
        if previous is not None:
            sys.modules[module_name] = previous
        if not was_parsed:
            registry.unparse_flags()
        absl_logging.set_verbosity(verbosity)


def parse(*args: str) -> list[str]:
    """absl's parse of `prog ARGS`, every flag back at its default first.

    sys.argv holds the same words meanwhile: ml_collections reads `--config.*` overrides from it.
    """
    flags.FLAGS.unparse_flags()
    argv, sys.argv = sys.argv, ["prog", *args]
    try:
        return flags.FLAGS(sys.argv)
    finally:
        sys.argv = argv


def run_main(module, *args: str) -> None:
    """`module.main` on ARGS; a `common.fail` exit becomes an assertion naming the status."""
    argv = parse(*args)
    try:
        module.main(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            raise AssertionError(f"{module.__name__} {' '.join(args)} exited with {e.code}") from e


def run_tool(argv: list[str], stdout, stderr=None) -> int:
    """`argv` (a console script's path or name, then its arguments) run through the tool's `main`, as the
    script would run it: parsed by the tools' own parser (`common.parse_flags`: --help exits 0, a bad flag
    or config override is one line and status 1), its output written to the files `stdout` and `stderr`
    (default: `stdout`), sys.argv holding `argv` (`common.fail` names the tool from it). Returns the exit
    status."""
    from chatpose_jax.cli.common import parse_flags

    module_name = CONSOLE_SCRIPTS[os.path.basename(argv[0])]
    with (
        fresh_cli(module_name) as tool,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stdout if stderr is None else stderr),
    ):
        saved = sys.argv
        try:
            flags.FLAGS.unparse_flags()
            sys.argv = list(argv)  # ml_collections reads `--config.*` overrides from it
            args = parse_flags(sys.argv)
            tool.main(args)
        except SystemExit as e:
            return 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        finally:
            sys.argv = saved
    return 0


def run_console(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`SCRIPT ARGS` through `run_tool` with its output captured, as `subprocess.run(..., capture_output=True,
    text=True)` returns it: for tests of a tool's output and exit status where no process boundary is under
    test. `env` sets environment variables for the run (restored after)."""
    out, err = io.StringIO(), io.StringIO()
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        status = run_tool([script, *args], out, err)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess([script, *args], status, out.getvalue(), err.getvalue())
