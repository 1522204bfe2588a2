"""The processor files of an export-hf folder: what `transformers.AutoProcessor` needs for an image prompt.

  preprocessor_config.json   the image processor: our chain (chatpose_jax/inference/images.py, the same
                             as data_pipelines/images.py): resize the short side to the tower's image size
                             (PIL bicubic), centre crop, scale 1/255, normalise with CLIP's mean and std.
                             CLIPImageProcessor, or LlavaImageProcessor with `do_pad` for a model trained
                             on LLaVA-1.5's pad-to-square (data.image_aspect="pad")
  processor_config.json      LlavaProcessor: patch_size, vision_feature_select_strategy and
                             num_additional_image_tokens, so that it writes each `<image>` as as many
                             image tokens as the model splices image features ((image_size / patch)^2
                             for LLaVA-1.5, whose CLS feature is dropped)
  chat_template.json         the Vicuna v1 prompt of chatpose_jax/inference/prompt.py as a Jinja template

The files and fields are those of the llava-hf hub folders (llava-hf/llava-1.5-7b-hf), so the
transformers versions that load those load these. Pure Python: no transformers needed to write them.
"""

from __future__ import annotations

import json
import os

from chatpose_jax import image_tokens
from chatpose_jax.inference import prompt
from chatpose_jax.inference.images import CLIP_MEAN, CLIP_STD
from chatpose_jax.model.config import ModelConfig

PREPROCESSOR_FILE = "preprocessor_config.json"
PROCESSOR_FILE = "processor_config.json"
CHAT_TEMPLATE_FILE = "chat_template.json"
PROCESSOR_FILES = (PREPROCESSOR_FILE, PROCESSOR_FILE, CHAT_TEMPLATE_FILE)
PIL_BICUBIC = 3  # PIL.Image.BICUBIC, transformers' PILImageResampling.BICUBIC
IMAGE_ASPECTS = ("none", "pad")


def image_processor_config(config: ModelConfig, image_aspect: str = "none") -> dict:
    """preprocessor_config.json: uint8 images -> float32[3, S, S] pixel_values as our preprocessing gives them.

    `image_aspect` "pad" adds LLaVA-1.5's pad-to-square (the mean colour, int(255 * mean)) before the
    resize: LlavaImageProcessor's `do_pad`, which CLIPImageProcessor lacks.
    """
    if image_aspect not in IMAGE_ASPECTS:
        raise ValueError(f"image_aspect {image_aspect!r}: expected one of {IMAGE_ASPECTS}")
    size = config.vision.image_size
    out = {
        "image_processor_type": "LlavaImageProcessor" if image_aspect == "pad" else "CLIPImageProcessor",
        "processor_class": "LlavaProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": PIL_BICUBIC,
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
    }
    if image_aspect == "pad":
        out["do_pad"] = True
    return out


def processor_config(config: ModelConfig) -> dict:
    """processor_config.json: LlavaProcessor writes `<image>` as vision.num_image_tokens image tokens.

    LlavaProcessor counts (S / patch)^2 + num_additional_image_tokens, less one under the "default"
    strategy (which drops CLS); num_additional_image_tokens is chosen to give our count.
    """
    v = config.vision
    additional = v.num_image_tokens - v.num_patches + int(v.feature_select == "default")
    return {
        "processor_class": "LlavaProcessor",
        "image_token": image_tokens.IMAGE_TOKEN,
        "patch_size": v.patch_size,
        "vision_feature_select_strategy": v.feature_select,
        "num_additional_image_tokens": additional,
    }


def _jinja_string(text: str) -> str:
    """`text` as a Jinja string literal."""
    return json.dumps(text)


def chat_template(config: ModelConfig) -> str:
    """The Jinja chat template that renders messages as `prompt.generation_prompt` does.

    `SYSTEM USER: <image>\\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT:` with add_generation_prompt
    (a "system" message replaces the default system prompt). Images of a user message come first,
    one placeholder and a newline each (`<im_start><image><im_end>` under mm_use_im_start_end), then
    its text parts joined by spaces and stripped; content may be a string or a list of parts. No
    `<s>`: the tokenizer adds it. The processor then writes each `<image>` as the image tokens.
    """
    image = _jinja_string(image_tokens.image_placeholder(config.mm_use_im_start_end) + "\n")
    user, assistant, eos = (_jinja_string(s) for s in (f"{prompt.USER}: ", f"{prompt.ASSISTANT}: ", prompt.EOS_TEXT))
    return (
        "{%- macro text(content) -%}"
        "{%- if content is string -%}{{- content | trim -}}"
        "{%- else -%}{{- content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ') | trim -}}"
        "{%- endif -%}"
        "{%- endmacro -%}"
        "{%- macro images(content) -%}"
        "{%- if content is not string -%}"
        "{%- for part in content if part['type'] == 'image' -%}{{- " + image + " -}}{%- endfor -%}"
        "{%- endif -%}"
        "{%- endmacro -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{{- text(messages[0]['content']) + ' ' -}}{%- set turns = messages[1:] -%}"
        "{%- else -%}"
        "{{- " + _jinja_string(prompt.SYSTEM_PROMPT + " ") + " -}}{%- set turns = messages -%}"
        "{%- endif -%}"
        "{%- for message in turns -%}"
        "{%- if message['role'] == 'user' -%}"
        "{{- " + user + " + images(message['content']) + text(message['content']) + ' ' -}}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{{- " + assistant + " + text(message['content']) + " + eos + " -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- " + _jinja_string(f"{prompt.ASSISTANT}:") + " -}}{%- endif -%}"
    )


def write_processor_files(out_dir: str, config: ModelConfig, image_aspect: str = "none") -> list[str]:
    """Writes preprocessor_config.json, processor_config.json and chat_template.json; returns their paths."""
    files = {
        PREPROCESSOR_FILE: image_processor_config(config, image_aspect),
        PROCESSOR_FILE: processor_config(config),
        CHAT_TEMPLATE_FILE: {"chat_template": chat_template(config)},
    }
    written = []
    for name, content in files.items():
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)
            f.write("\n")
        written.append(path)
    return written
