"""The fine-tuning pipeline: logged conversations (and agents' edits of suggestions) become
supervised pairs that train the next GPT-2 composer. Reads the store, writes models.

- `finetune.scrub`: PII scrubbing (emails, phones, cards, order ids, personal names ->
  `{{Order Number}}`-style placeholders) with counts per type.
- `finetune.pairs`: `build_pairs` / `write_pairs` - (context, evidence, target) pairs from
  the store and transcript files, filtered, scrubbed, split by conversation, written as
  train.jsonl / valid.jsonl / manifest.json (`csbot finetune pairs`).
- `bot.cli.finetune`: the `csbot finetune` commands.

Tokenizer, training and the model registry come next (issue 3).
"""
