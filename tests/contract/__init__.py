"""The API contract, written down once: ``api.schema.json`` and the cases in ``cases.py``."""
