"""Benchmarks of the bridge: programs that print what they measured (see bench/README.md)."""
