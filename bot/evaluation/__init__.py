"""Offline measurements behind docs/benchmarks.md: `csbot eval intents|retrieval|generation`."""
