"""Tenant isolation in the page: a second tenant's session sees none of the first's imports,
reports or assets, not in the lists and not by URL either."""

from __future__ import annotations

import uuid

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
    wait_for,
    wait_status,
)

SAMPLES = ROOT / "dataimport" / "samples"


def other_tenant() -> Tenant:
    return Tenant(uuid.uuid4(), uuid.uuid4())


def test_a_second_tenant_sees_nothing_of_the_first(
    browser: WebDriver, second_browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    first_key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, first_key)
    data_import_id = upload(
        browser, console_stack, SAMPLES / "azure_migrate_dependencies.csv", "app_discovery"
    )
    wait_status(browser, "completed", "completed_with_errors")
    headers = {"Authorization": f"Bearer {first_key}"}
    groups = httpx.get(f"{console_stack.url}/api/v1/dependency-groups", headers=headers).json()
    group = groups["items"][0]["group"]
    asset = httpx.get(f"{console_stack.url}/api/v1/assets", headers=headers).json()["items"][0]

    other = other_tenant()
    sign_in(second_browser, console_stack, console_stack.key_for(other))
    assert element(second_browser, "#tenant-client").text == str(other.client_account_id)
    assert second_browser.find_elements(By.CSS_SELECTOR, "a.import-link") == []
    assert element(second_browser, "#imports-table .empty").text == "No imports yet."

    # By URL: the first tenant's import answers like an id that does not exist.
    second_browser.get(f"{console_stack.url}/console/#/imports/{data_import_id}")
    message = wait_for(
        second_browser, lambda d: d.find_element(By.ID, "flash").text or False, "not found"
    )
    assert message == f"Not found: no import {data_import_id}"
    assert second_browser.find_elements(By.CSS_SELECTOR, "#import h1") == []
    screenshot(second_browser, "tenant-isolation-import")

    second_browser.get(f"{console_stack.url}/console/#/assets")
    element(second_browser, "#assets-table .empty")
    second_browser.find_element(By.ID, "asset-search").send_keys(asset["name"])
    second_browser.find_element(By.ID, "asset-filter").click()
    element(second_browser, "#assets-table .empty")
    assert second_browser.find_elements(By.CSS_SELECTOR, "#assets .asset-name") == []

    second_browser.get(f"{console_stack.url}/console/#/groups/{group}")
    assert element(second_browser, "#graph-summary").text == "0 assets · 0 dependencies"
    assert second_browser.find_elements(By.CSS_SELECTOR, "#graph") == []
    second_browser.get(f"{console_stack.url}/console/#/groups")
    element(second_browser, "#view .empty")
    second_browser.get(f"{console_stack.url}/console/#/dependencies")
    assert element(second_browser, "#dependencies-table .empty").text == "No dependencies."

    # The first tenant still sees its own, in the same moment.
    browser.get(f"{console_stack.url}/console/#/imports")
    element(browser, f'a.import-link[data-id="{data_import_id}"]')
