"""Test support shared by every test folder: reference paths, generated weights, tiny shots.

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject), so tests import ``support.reference``
and ``support.shots`` directly; the fixtures are registered once, in ``tests/conftest.py``.
"""
