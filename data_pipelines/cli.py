"""`chatpose-data prepare NAME --manual_dir RAW --data_dir OUT` and `chatpose-data synth --out DIR`.

chatpose-data synth --out /tmp/raw                 # every raw format + tokenizer + body model
chatpose-data prepare posescript --manual_dir /tmp/raw/posescript --data_dir /tmp/tfds
chatpose-data prepare posescript --manual_dir /data/posescript --amass_dir /data/AMASS --data_dir /tfds
"""

from absl import flags

from chatpose_jax.cli import common

SUBCOMMANDS = ("prepare", "synth")

_MANUAL_DIR = common.define_path("manual_dir", None, "Folder holding the raw release files.")
_DATA_DIR = common.define_path("data_dir", None, "TFDS data_dir to write prepared datasets to.")
_OUT = common.define_path("out", None, "Folder for synthetic raw datasets (synth).")
_STRICT = flags.DEFINE_bool("strict", False, "prepare: raise on the first bad record instead of skipping it.")
_AMASS_DIR = common.define_path("amass_dir", None, "prepare posescript: AMASS root (default MANUAL_DIR/AMASS).")
_BUILDER_CONFIG = flags.DEFINE_string("builder_config", None, "prepare: builder config (e.g. posescript 'raw').")
_SEED = flags.DEFINE_integer("seed", 0, "synth: random seed.")
_NUM_POSES = flags.DEFINE_integer("num_poses", 300, "synth: PoseScript poses.")
_NUM_HMR = flags.DEFINE_integer("num_hmr_images", 150, "synth: HMR person images (npz + tars).")
_NUM_VQA = flags.DEFINE_integer("num_vqa_images", 90, "synth: LLaVA-Instruct images.")
_NUM_SPG = flags.DEFINE_integer("num_spg", 60, "synth: SPG pairs.")
_NUM_RPE = flags.DEFINE_integer("num_rpe", 30, "synth: RPE samples.")


def main(argv):
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        common.fail(f"usage: chatpose-data {{{','.join(SUBCOMMANDS)}}} [NAME] [flags]")
    import data_pipelines  # noqa: F401  (TensorFlow set up, builders registered)

    if argv[1] == "synth":
        from data_pipelines.synthetic.writers import synthesize

        if not _OUT.value:
            common.fail("synth needs --out DIR")
        paths = synthesize(
            _OUT.value,
            num_poses=_NUM_POSES.value,
            num_hmr_images=_NUM_HMR.value,
            num_vqa_images=_NUM_VQA.value,
            num_spg=_NUM_SPG.value,
            num_rpe=_NUM_RPE.value,
            seed=_SEED.value,
        )
        for name, path in paths.items():
            print(f"{name}: {path}")
        return
    from data_pipelines.builders import BUILDERS
    from data_pipelines.builders.common import BadRecordError
    from data_pipelines.prepare import prepare

    if len(argv) != 3 or argv[2] not in BUILDERS:
        common.fail(f"usage: chatpose-data prepare {{{','.join(BUILDERS)}}} --manual_dir RAW --data_dir OUT")
    if not _MANUAL_DIR.value or not _DATA_DIR.value:
        common.fail("prepare needs --manual_dir and --data_dir")
    kwargs = {}
    if _AMASS_DIR.value:
        if argv[2] != "posescript":
            common.fail("--amass_dir applies to posescript only")
        kwargs["amass_dir"] = _AMASS_DIR.value
    if _BUILDER_CONFIG.value:
        kwargs["config"] = _BUILDER_CONFIG.value
    try:
        builder = prepare(argv[2], _MANUAL_DIR.value, _DATA_DIR.value, strict=_STRICT.value, **kwargs)
    except (FileNotFoundError, BadRecordError, ValueError, KeyError) as e:
        common.fail(str(e))
    splits = ", ".join(f"{k}: {v.num_examples}" for k, v in builder.info.splits.items())
    print(f"{argv[2]} prepared in {builder.data_dir} ({splits})")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
