"""Every golden case of the four categories' golden tests, for the recorder."""

from __future__ import annotations

from tests.golden.listing import GoldenCase
from tests.unit.test_columnar_golden import CASES as CMDB_CASES
from tests.unit.test_columnar_golden_app_discovery import CASES as APP_CASES
from tests.unit.test_columnar_golden_infrastructure import CASES as INFRA_CASES
from tests.unit.test_columnar_golden_sensitive import CASES as SENSITIVE_CASES

ALL_CASES: list[GoldenCase] = [*CMDB_CASES, *APP_CASES, *INFRA_CASES, *SENSITIVE_CASES]
