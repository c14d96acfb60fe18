"""Helpers that more than one test file uses, none of them a test or a fixture.

Clients that talk to a real daemon (`chatclient`, `wsclient`), ClientHellos
as bytes (`hellos`), the fault-planting daemon (`faulty_chatd`, run as
`python -m tests.support.faulty_chatd`), and the small pieces below them. The
fixtures that hand these out live in the conftest.py of the directory whose
tests use them (tests/conftest.py for all), so that no test module imports
another.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout the tests run from
