"""Plan, then apply, in the page: an import started with require_approval shows its plan;
Approve runs enrichment, Reject (with a reason) ends another as rejected, inventory untouched."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from dataimport.imports import Tenant
from tests.e2e.browser.conftest import (
    ROOT,
    ConsoleStack,
    element,
    screenshot,
    sign_in,
    upload,
    wait_status,
)

SAMPLE = ROOT / "dataimport" / "samples" / "servicenow_cmdb_ci_server.csv"
APPROVAL = '{"require_approval": true}'


def api_json(stack: ConsoleStack, key: str, path: str) -> dict:
    response = httpx.get(
        f"{stack.url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def count_of(driver: WebDriver, section: str) -> int:
    heading = driver.find_element(By.CSS_SELECTOR, f"#{section} h3").text
    return int(heading.rsplit(":", 1)[1].strip().replace(",", ""))


def test_approve_a_plan_then_reject_another(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    approved = upload(browser, console_stack, SAMPLE, "cmdb_export", processing_config=APPROVAL)
    wait_status(browser, "awaiting_approval")
    element(browser, "#approval #plan-create")
    plan = api_json(console_stack, key, f"/imports/{approved}/plan")
    assert count_of(browser, "plan-create") == plan["assets_to_create"]["count"] > 0
    assert count_of(browser, "plan-update") == plan["assets_to_update"]["count"]
    assert count_of(browser, "plan-dependencies") == plan["dependencies_to_add"]["count"]
    names = [
        row.find_element(By.TAG_NAME, "td").text
        for row in browser.find_elements(By.CSS_SELECTOR, "#plan-create tbody tr")
    ]
    assert names == [asset["name"] for asset in plan["assets_to_create"]["sample"]]
    assert api_json(console_stack, key, "/assets")["items"] == []  # nothing applied yet
    screenshot(browser, "approval-plan")

    browser.find_element(By.ID, "approve").click()
    assert wait_status(browser, "completed", "completed_with_errors")
    assets = api_json(console_stack, key, "/assets?limit=1000")["items"]
    assert len(assets) == plan["assets_to_create"]["count"]

    rejected = upload(browser, console_stack, SAMPLE, "cmdb_export", processing_config=APPROVAL)
    wait_status(browser, "awaiting_approval")
    element(browser, "#reject-reason").send_keys("not this quarter")
    browser.find_element(By.ID, "reject").click()
    assert wait_status(browser, "rejected") == "rejected"
    status = api_json(console_stack, key, f"/imports/{rejected}")
    assert status["status"] == "rejected"
    assert len(api_json(console_stack, key, "/assets?limit=1000")["items"]) == len(assets)
    screenshot(browser, "approval-rejected")
