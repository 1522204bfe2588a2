"""Pieces shared by the command-line tools: the --config flag, path flags, validation, plain failures."""

from __future__ import annotations

import dataclasses
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from chatpose_jax import paths
from chatpose_jax.config_types import ConfigError
from chatpose_jax.experiment import Experiment, load_experiment
from chatpose_jax.parallel.mesh import hybrid_layout


class PathParser(flags.ArgumentParser):
    """A path flag's value through `paths.absolute`: local paths absolute, `gs://...` as given.

    `keywords` (such as `synthetic` for --body_model) and the empty string (unset) stay as given.
    """

    syntactic_help = "a local path (relative ones from the working directory) or gs:// URL"

    def __init__(self, keywords: tuple[str, ...] = ()):
        self.keywords = tuple(keywords)

    def parse(self, argument) -> str:
        if not isinstance(argument, str):
            raise TypeError(f"a path must be a string, not {argument!r}")
        return argument if not argument or argument in self.keywords else paths.absolute(argument)

    def flag_type(self) -> str:
        return "path"


def _tool_module(depth: int) -> str:
    """The module `depth` frames up (the tool's), as absl names it in --help."""
    module = sys._getframe(depth + 1).f_globals["__name__"]
    return sys.argv[0] if module == "__main__" else module


def define_path(
    name: str,
    default: str | None,
    help: str,
    required: bool = False,
    keywords: tuple[str, ...] = (),
    module_name: str | None = None,
) -> flags.FlagHolder:
    """`--NAME=PATH`, like `flags.DEFINE_string` but read through `PathParser`, so the tool sees an absolute path.

    Orbax refuses relative paths ("Checkpoint path should be absolute"); resolving them here, as
    they are parsed, keeps every later step (orbax, TFDS, subprocesses) independent of the working
    directory. A default is resolved when the tool's module is imported. The flag belongs to the
    calling module (`module_name` overrides it).
    """
    return flags.DEFINE(
        PathParser(keywords),
        name,
        default,
        help,
        serializer=flags.ArgumentSerializer(),
        module_name=module_name or _tool_module(1),
        required=required,
    )


def define_body_model_flag() -> flags.FlagHolder:
    """`--body_model` of the tools that draw bodies (chatpose-chat, chatpose-web)."""
    return define_path(
        "body_model",
        "synthetic",
        "SMPL / SMPL-H / SMPL-X file or smplx-style folder; 'synthetic' = a generated SMPL.",
        keywords=("synthetic",),
        module_name=_tool_module(1),
    )


@dataclasses.dataclass(frozen=True)
class SamplingFlags:
    """The generation flags of the tools that answer prompts; `values()` gives `ChatModel.stream`'s keywords."""

    max_new_tokens: flags.FlagHolder
    temperature: flags.FlagHolder
    top_p: flags.FlagHolder
    seed: flags.FlagHolder

    def values(self) -> dict:
        return {f.name: getattr(self, f.name).value for f in dataclasses.fields(self)}


def define_sampling_flags(max_new_tokens_help: str = "Most tokens per answer.") -> SamplingFlags:
    """--max_new_tokens, --temperature, --top_p and --seed, in the calling tool's module."""
    module = _tool_module(1)
    return SamplingFlags(
        flags.DEFINE_integer("max_new_tokens", 256, max_new_tokens_help, lower_bound=1, module_name=module),
        flags.DEFINE_float(
            "temperature", 0.0, "Sampling temperature; 0 = greedy.", lower_bound=0.0, module_name=module
        ),
        flags.DEFINE_float(
            "top_p", 1.0, "Nucleus sampling mass.", lower_bound=0.0, upper_bound=1.0, module_name=module
        ),
        flags.DEFINE_integer("seed", 0, "Sampling seed.", module_name=module),
    )


def warn_if_synthetic_body(body_model: str, trained_body_model: str) -> None:
    """Warns on stderr when the generated stand-in body would draw a checkpoint not trained with it."""
    if body_model == "synthetic" and trained_body_model != "synthetic":
        print(
            "warning: --body_model=synthetic poses a generated stand-in body, not SMPL: this checkpoint "
            "(not one of the demo's) needs --body_model=PATH (an SMPL file or smplx-style folder)",
            file=sys.stderr,
        )


def experiment_paths_absolute(experiment: Experiment) -> Experiment:
    """`experiment` with its path fields (data.data_dir, data.tokenizer, init_checkpoint, train.body_model,
    retrieval.tokenizer, retrieval.init_embeddings) through `paths.absolute`: `--config.data.data_dir=data/tfds`
    works from any working directory, and the checkpoints' saved config names files that later tools find."""
    resolve = PathParser(keywords=("synthetic",)).parse
    return dataclasses.replace(
        experiment,
        init_checkpoint=resolve(experiment.init_checkpoint),
        data=dataclasses.replace(
            experiment.data, data_dir=resolve(experiment.data.data_dir), tokenizer=resolve(experiment.data.tokenizer)
        ),
        train=dataclasses.replace(experiment.train, body_model=resolve(experiment.train.body_model)),
        retrieval=dataclasses.replace(
            experiment.retrieval,
            tokenizer=resolve(experiment.retrieval.tokenizer),
            init_embeddings=resolve(experiment.retrieval.init_embeddings),
        ),
    )


def define_config_flag(required: bool = True) -> flags.FlagHolder:
    """`--config path/to/config.py[:arg]` plus `--config.section.field=value` overrides."""
    holder = config_flags.DEFINE_config_file(
        "config",
        default=None,
        help_string="Experiment config file (configs/*.py), optionally `:arg`. Any field can be "
        "overridden: --config.optimizer.lr=1e-4",
        lock_config=True,
    )
    if required:
        flags.mark_flag_as_required("config")
    return holder


def validated_experiment(config, num_devices: int | None = None, devices=None) -> Experiment:
    """Validates the config against the devices (default: all of this job's); exits with the field at fault.

    With real devices (or `devices`), the mesh's layout across slices or processes is checked too.
    Path fields come back absolute (`experiment_paths_absolute`).
    """
    try:
        if num_devices is not None and devices is None:
            return experiment_paths_absolute(load_experiment(config, num_devices))
        devices = jax.devices() if devices is None else devices
        experiment = load_experiment(config, len(devices))
        hybrid_layout(experiment.mesh, devices)
        return experiment_paths_absolute(experiment)
    except ConfigError as e:
        fail(f"invalid config: {e}")


def fail(message: str, code: int = 1):
    """Prints `message` to stderr and exits: a clear error instead of a traceback."""
    prog = sys.argv[0].rsplit("/", 1)[-1]
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with config-override mistakes turned into one clear line."""
    try:
        return flags.FLAGS(argv)
    except SystemExit as e:
        # absl exits 1 after printing --help; asking for help is not a failure.
        help_asked = any(a in ("--help", "-h", "--helpfull", "--helpshort", "-?") for a in argv[1:])
        sys.exit(0 if help_asked else e.code)
    except flags.Error as e:
        fail(f"{e}\nPass --help for the flags.")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # ml_collections raises these for `--config.a.b=v` with an unknown field or a bad value.
        detail = str(e).strip("'\"").replace("\\'", "'").replace("\\n", " ").replace("\n", " ")
        overrides = [a for a in argv[1:] if a.startswith("--config.")]
        named = [a for a in overrides if f"'{a.split('=', 1)[0].rsplit('.', 1)[-1]}'" in detail]
        override = (named or overrides or ["--config.*"])[0]
        fail(f"cannot apply the config override {override}: {detail}")


def run_app(main) -> None:
    """`absl.app.run` with config-override errors reported without a traceback."""
    app.run(main, flags_parser=parse_flags)
