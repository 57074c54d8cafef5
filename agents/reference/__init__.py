"""Reference agents: honest answers from what any agent sees, never from the oracle."""
