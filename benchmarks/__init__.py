"""Benchmarks of the MongoDB store: ``python -m benchmarks.run [--quick] [--uri URI] [--out DIR]``.

See ``docs/performance.md`` for what is measured and what the numbers mean.
"""
