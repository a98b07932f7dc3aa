"""What a csbot GPT-2 model directory holds, named once for the trainer, the registry and
the decoder that loads it.

A model directory is a Hugging Face checkpoint (config, tokenizer, weights) plus
`csbot_model.json`: the configs that made it (base, training, data hash) and the
generation settings calibrated on its validation pairs. A directory without that file
is refused, so that an arbitrary checkpoint is never served as if it were ours.
"""

MODEL_META = "csbot_model.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
