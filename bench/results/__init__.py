"""The results documents: their typed schema and history, migrations of older versions, builders,
and the store (run folders, atomic writes, the one loader)."""
