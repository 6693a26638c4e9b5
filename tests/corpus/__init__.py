"""Bad-input corpus and seeded file mutations, shared by the tests and ``benchmarks/fuzz.py``."""
