"""Prefect tasks, one module per stage: generate -> fan out -> score -> checkpoint -> publish."""
