"""The translator benchmark: ``python -m bench`` (see bench/README.md)."""
