"""Benchmark harness of ome-agent (issue 2 §6); entry point ``python -m benches.run``.

Not part of the test run: it measures, it does not pass or fail. See README.md.
"""
