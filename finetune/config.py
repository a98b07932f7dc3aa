"""The fine-tuning configs in one place (plain dataclasses; importing this loads no torch).

`GeneratorBaseConfig` shapes the scratch GPT-2 and its pretraining (finetune/model.py);
`TrainConfig` drives fine-tuning (finetune/train.py). Both are saved with every model via
`dataclasses.asdict` in `csbot_model.json`.
"""

from finetune.model import GeneratorBaseConfig
from finetune.train import TrainConfig

__all__ = ["GeneratorBaseConfig", "TrainConfig"]
