"""What a csbot GPT-2 model directory holds, named once for the trainer, the registry and
the decoder that loads it.

A model directory is a Hugging Face checkpoint (config, tokenizer, weights) plus
`csbot_model.json`: the configs that made it (base, training, data hash) and the
generation settings calibrated on its validation pairs. A directory without that file
is refused, so that an arbitrary checkpoint is never served as if it were ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MODEL_META = "csbot_model.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def set_generation_settings(model_dir: Path, **settings: Any) -> dict[str, Any]:
    """Record generation settings chosen for the model in `model_dir` after its training (a
    learning round's agreement floor) in the "generation" section of its csbot_model.json,
    which `finetune.decoder.resolve_generation` reads: the model carries what was chosen
    for it. The file is replaced whole (written beside it, then renamed). Returns the section."""
    path = Path(model_dir) / MODEL_META
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {model_dir} is not a csbot model directory")
    meta = json.loads(path.read_text(encoding="utf-8"))
    section = {**(meta.get("generation") or {}), **settings}
    meta["generation"] = section
    tmp = path.with_name(f".{MODEL_META}.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return section
