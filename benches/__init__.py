"""Benchmark harness of ome-agent (method: benches/README.md): ``python -m benches.run``.

Not part of the test run: it measures, it does not pass or fail. See README.md.
"""
