"""Graders shared by the reward tests (worker start-up is paid once per session)."""

from __future__ import annotations

import pytest

from rewards.math import MathGrader


@pytest.fixture(scope="session")
def math_grader():
    with MathGrader(num_workers=2, timeout=1.0, mode="math") as g:
        yield g.start()


@pytest.fixture(scope="session")
def choice_grader():
    with MathGrader(num_workers=1, timeout=1.0, mode="choice") as g:
        yield g
