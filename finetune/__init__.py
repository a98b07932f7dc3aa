"""The GPT-2 model side of csbot: training data, training, the model registry and decoding.

Imports only `retrieval` (never `bot`); torch and transformers load inside the functions
that need them.

- `finetune.pairs`: supervised (context, evidence, target) pairs from the store's trusted
  replies and transcript files, scrubbed, split by conversation, written atomically;
  `erase_from_pairs` / `find_pairs_dirs` serve privacy requests. `finetune.corpus` builds
  pairs straight from a question/answer CSV.
- `finetune.scrub`: the PII scrubbing of training text, through `retrieval.pii.PiiScrubber`.
- `finetune.prompt`: the prompt layout shared by training and generation.
- `finetune.tokenizer`: csbot's BPE tokenizer and its special tokens.
- `finetune.model`: the base model (a small GPT-2 from scratch, or a GPT-2 checkpoint) and
  its pretraining.
- `finetune.train`: fine-tuning on a pairs directory with the HF Trainer
  (`finetune.train_data` reads and encodes the pairs, `finetune.trainer_hooks` holds the
  Trainer's callbacks); `finetune.checkpoint` names what a model directory holds.
- `finetune.registry`: trained models kept in the workspace, one promoted, with rollback.
- `finetune.decoder`, `finetune.decoding`, `finetune.guard`: loading a model, decoding
  replies, and checking that a reply is grounded in its context and evidence.
"""
