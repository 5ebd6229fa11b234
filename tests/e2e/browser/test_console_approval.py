"""Plan, then apply, in the page: an import started with require_approval shows its plan;
Approve runs enrichment, Reject (with a reason) ends another as rejected, inventory untouched;
a plan another import made stale says so and is made again before it can be approved."""

from __future__ import annotations

import time
from pathlib import Path

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


def upload_by_api(stack: ConsoleStack, key: str, path: Path) -> str:
    """Another import of the tenant, started and finished outside the page."""
    with path.open("rb") as handle:
        response = httpx.post(
            f"{stack.url}/api/v1/imports",
            headers={"Authorization": f"Bearer {key}"},
            data={"import_category": "cmdb_export"},
            files={"file": (path.name, handle, "text/csv")},
            timeout=30,
        )
    assert response.status_code in (200, 201, 202), response.text
    data_import_id = str(response.json()["data_import_id"])
    for _ in range(600):
        if api_json(stack, key, f"/imports/{data_import_id}")["status"] == "completed":
            return data_import_id
        time.sleep(0.2)
    raise AssertionError(f"import {data_import_id} did not complete")


def test_a_plan_made_stale_by_another_import_is_made_again_before_it_is_approved(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    waiting = upload(browser, console_stack, SAMPLE, "cmdb_export", processing_config=APPROVAL)
    wait_status(browser, "awaiting_approval")
    first = api_json(console_stack, key, f"/imports/{waiting}/plan")
    assert element(browser, "#plan-meta").get_attribute("data-plan-id") == first["plan_id"]
    assert first["assets_to_create"]["count"] > 0 and not first["stale"]
    assert browser.find_elements(By.ID, "plan-stale") == []

    # Meanwhile another import of the tenant writes the same servers to the inventory.
    upload_by_api(console_stack, key, SAMPLE)
    browser.refresh()
    banner = element(browser, "#plan-stale")
    assert "inventory changed since the plan was made" in banner.text
    assert count_of(browser, "plan-create") == first["assets_to_create"]["count"]  # as shown
    screenshot(browser, "approval-plan-stale")

    # Approving what is on screen is refused; the fresh plan replaces it, to approve anew.
    browser.find_element(By.ID, "approve").click()
    refusal = element(browser, "#approval-result")
    assert refusal.text.startswith("Not approved: the inventory changed since the plan was made")
    assert "review it and approve again" in refusal.text
    fresh = api_json(console_stack, key, f"/imports/{waiting}/plan")
    assert fresh["plan_id"] != first["plan_id"] and not fresh["stale"]
    assert element(browser, "#plan-meta").get_attribute("data-plan-id") == fresh["plan_id"]
    assert browser.find_elements(By.ID, "plan-stale") == []
    assert "null" not in element(browser, "#approval").text
    assert count_of(browser, "plan-create") == fresh["assets_to_create"]["count"] == 0
    assert count_of(browser, "plan-update") == fresh["assets_to_update"]["count"]
    assert api_json(console_stack, key, f"/imports/{waiting}")["status"] == "awaiting_approval"
    screenshot(browser, "approval-plan-made-again")

    browser.find_element(By.ID, "approve").click()
    assert wait_status(browser, "completed", "completed_with_errors")
    done = api_json(console_stack, key, f"/imports/{waiting}")
    assert done["assets_created"] == 0
    assert done["assets_updated"] == fresh["assets_to_update"]["count"]
