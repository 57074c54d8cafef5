"""Prefect flows: run_scenario (generate -> fan out -> score -> checkpoint -> publish), generate_dataset."""
