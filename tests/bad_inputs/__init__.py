"""The catalogue of bad inputs the project must refuse, its valid controls, and the kill points.

Shared by ``tests/test_bad_inputs.py``, ``tests/test_kill_points.py`` and
``benchmarks/reliability.py``, so that the benchmark counts exactly the cases the tests run.
"""
