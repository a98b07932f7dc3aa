"""The fine-tuning pipeline: logged conversations (and agents' edits of suggestions) become
supervised pairs that train the next GPT-2 composer. Reads the store, writes models.

Not built yet: this package is filled by the issue "Grounded GPT-2 replies and the
fine-tuning pipeline from logged conversations".
"""
