"""The scenarios: one module each, found by the registry. Adding a scenario is adding a module."""
