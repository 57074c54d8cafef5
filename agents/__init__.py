"""Agents: how a spec (``reference``, ``package.module:callable``, ``http(s)://...``) becomes a callable."""
