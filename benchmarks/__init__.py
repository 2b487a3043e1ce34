"""Benchmarks of dbmother, run by hand from the checkout's root as
``python -m benchmarks.<name>``; their figures and commands are written in docs/.

They time the ``mother`` found on the path: in a checkout that is not the one
installed in the virtualenv, put its sources first (``PYTHONPATH=src``).
"""
