"""Benchmarks: each figure a ratio against a baseline measured in the same run, on a database of
its own (DATABASE_URL's server, or the embedded one).

    .venv/bin/python -m bench [--devices 100000] [--out bench/RESULTS.md]
    .venv/bin/python -m bench --smoke          # tiny sizes: the same code, in seconds

harness.py times and reports; dataset.py builds the data and hands each figure the devices it
may use; instruments.py holds what measures (round trips, simulated containers, CPU time);
figures/ has one module per figure, run in order by __main__.py.
"""
