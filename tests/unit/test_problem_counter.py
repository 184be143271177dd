"""Every problem answer of the gateway is counted by status and code (the 5xx alert's series)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from gateway.problems import Problem, problem_response, unavailable

pytestmark = pytest.mark.unit


def _count(status: str, code: str) -> float:
    labels = {"status": status, "code": code}
    return REGISTRY.get_sample_value("flashsale_http_problems_total", labels) or 0.0


def test_each_problem_answer_is_counted_by_its_status_and_code() -> None:
    before = _count("503", "unavailable"), _count("409", "insufficient_stock")
    problem_response(unavailable("the broker is away"), "/api/holds")
    problem_response(unavailable("the broker is away"), "/api/holds")
    problem_response(Problem(409, "insufficient_stock", "sold out", available=0))
    after = _count("503", "unavailable"), _count("409", "insufficient_stock")
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
