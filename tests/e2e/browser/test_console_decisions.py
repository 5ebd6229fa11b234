"""Decisions in the page: retry an import that needs attention with a mapping chosen in the
editor (previewed first), fail another with a reason, and a refused decision shown at once."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from dataimport.imports import Tenant
from tests.e2e.browser.conftest import (
    ConsoleStack,
    element,
    screenshot,
    sign_in,
    upload,
    wait_for,
    wait_status,
)
from tests.factories import write_csv


def unmapped_csv(tmp_path: Path) -> Path:
    """Headers no alias knows: the import waits in needs_attention for a mapping."""
    headers = ["Server Label", "Primary Address"]
    rows = [["ALPHA", "10.0.0.1"], ["BETA", "10.0.0.2"], ["GAMMA", "10.0.0.3"]]
    return write_csv(tmp_path / "odd.csv", headers, rows)


def choose(driver: WebDriver, header: str, field: str) -> None:
    select = driver.find_element(By.CSS_SELECTOR, f'#mapping-editor select[data-header="{header}"]')
    Select(select).select_by_value(field)


def api(
    stack: ConsoleStack,
    key: str,
    method: str,
    path: str,
    json: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{stack.url}/api/v1{path}"
    return httpx.request(method, url, headers=headers, timeout=60, json=json, params=params)


def test_retry_with_a_mapping_chosen_in_the_editor(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    data_import_id = upload(browser, console_stack, unmapped_csv(tmp_path), "cmdb_export")
    wait_status(browser, "needs_attention")
    why = element(browser, "#why").text
    assert "Why it needs attention" in why and "no-mapped-columns" in why
    unmapped = browser.find_elements(By.CSS_SELECTOR, "#mapping-editor label.unmapped")
    assert [label.text for label in unmapped] == ["Server Label", "Primary Address"]
    options = Select(
        browser.find_element(By.CSS_SELECTOR, '#mapping-editor select[data-header="Server Label"]')
    ).options
    assert {"name", "ip_address", "hostname"} <= {
        option.get_attribute("value") for option in options
    }

    choose(browser, "Server Label", "name")
    choose(browser, "Primary Address", "ip_address")
    browser.find_element(By.ID, "preview-mapping").click()
    preview = element(browser, "#mapping-preview table")
    heads = [th.text for th in preview.find_elements(By.CSS_SELECTOR, "thead th")]
    assert heads == ["Row", "name", "ip_address"]
    cells = [
        [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        for row in preview.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert cells == [
        ["1", "ALPHA", "10.0.0.1"],
        ["2", "BETA", "10.0.0.2"],
        ["3", "GAMMA", "10.0.0.3"],
    ]
    screenshot(browser, "decision-mapping-editor")

    browser.find_element(By.ID, "retry").click()
    assert wait_status(browser, "completed", "completed_with_errors") == "completed"
    config = api(console_stack, key, "GET", f"/imports/{data_import_id}/report").json()
    assert config["processing_config"]["column_mapping"] == {
        "Server Label": "name",
        "Primary Address": "ip_address",
    }
    assets = api(console_stack, key, "GET", "/assets", params={"q": "ALPHA"}).json()["items"]
    assert [(a["name"], a["ip_address"]) for a in assets] == [("ALPHA", "10.0.0.1")]


def test_fail_with_a_reason(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    data_import_id = upload(browser, console_stack, unmapped_csv(tmp_path), "cmdb_export")
    wait_status(browser, "needs_attention")
    browser.find_element(By.ID, "fail").click()  # no reason yet: the page asks for one
    assert "Give a reason" in element(browser, "#decision-result").text
    browser.find_element(By.ID, "fail-reason").send_keys("wrong extract")
    browser.find_element(By.ID, "fail").click()
    assert wait_status(browser, "failed") == "failed"
    status = api(console_stack, key, "GET", f"/imports/{data_import_id}").json()
    assert status["status"] == "failed"
    assert "wrong extract" in (status["error_message"] or "")
    assert "wrong extract" in element(browser, "#why").text
    screenshot(browser, "decision-failed")


def test_a_refused_decision_shows_its_reason_at_once(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    data_import_id = upload(browser, console_stack, unmapped_csv(tmp_path), "cmdb_export")
    wait_status(browser, "needs_attention")
    # Someone else decides first (the CLI, another tab): the page still offers Retry.
    failed = api(
        console_stack, key, "POST", f"/imports/{data_import_id}/fail", json={"reason": "elsewhere"}
    )
    assert failed.status_code == 202, failed.text
    choose(browser, "Server Label", "name")
    browser.find_element(By.ID, "retry").click()
    refusal = wait_for(
        browser,
        lambda d: d.find_element(By.ID, "decision-result").text or False,
        "the refusal",
    )
    assert refusal.startswith("Retry refused:")
    assert "only an import that needs attention can be retried" in refusal


def test_the_models_suggestion_is_pre_filled_in_the_editor(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    # Headers only the model stand-in knows (tests/test_model_agents.KNOWN_FIELDS).
    odd = write_csv(tmp_path / "model.csv", ["Srv Moniker", "Box IP"], [["DELTA", "10.0.0.4"]])
    config = '{"model_agents": true}'
    data_import_id = upload(browser, console_stack, odd, "cmdb_export", processing_config=config)
    wait_status(browser, "needs_attention")
    assert "A model suggests" in element(browser, "#why").text
    assert "A model's suggestion is pre-filled" in browser.find_element(By.ID, "decisions").text
    chosen = {
        header: Select(
            browser.find_element(By.CSS_SELECTOR, f'#mapping-editor select[data-header="{header}"]')
        ).first_selected_option.get_attribute("value")
        for header in ("Srv Moniker", "Box IP")
    }
    assert chosen == {"Srv Moniker": "name", "Box IP": "ip_address"}
    browser.find_element(By.ID, "retry").click()
    assert wait_status(browser, "completed", "completed_with_errors") == "completed"
    report = api(console_stack, key, "GET", f"/imports/{data_import_id}/report").json()
    assert report["processing_config"]["column_mapping"] == chosen
    assert report["processing_config"]["model_agents"] is True  # the rest of the config kept
