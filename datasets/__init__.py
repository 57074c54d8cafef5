"""Stage 1, generate: declarative dataset specs, record-level deterministic generators,
partitioned Parquet with a manifest, and the oracle that knows what was planted.

Imported as ``scenario_pipeline.datasets``; this folder is never installed as a top-level
``datasets`` module (that name belongs to Hugging Face's package).
"""
