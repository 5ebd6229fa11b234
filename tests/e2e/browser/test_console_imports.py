"""Upload a file of each category through the page, watch it finish, read its report, download
its rejected rows; a refused file shows why in words; the page stays readable at 390 px."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from dataimport.agents import agent_names
from dataimport.categories import REGISTRY
from dataimport.imports import Tenant
from tests.e2e.browser.conftest import (
    ROOT,
    WEB_UI,
    ConsoleStack,
    counter,
    element,
    screenshot,
    sign_in,
    upload,
    wait_for,
    wait_status,
)
from tests.factories import CMDB_HEADERS, cmdb_row, write_csv

SAMPLES = ROOT / "dataimport" / "samples"
SAMPLE_OF = {
    "cmdb_export": "servicenow_cmdb_ci_server.csv",
    "app_discovery": "azure_migrate_dependencies.csv",
    "infrastructure": "rvtools_export.xlsx",
    "sensitive_data": "data_store_inventory.csv",
}
FINISHED = ("completed", "completed_with_errors")


def some_invalid_csv(tmp_path: Path) -> Path:
    """Four servers, the second with a malformed IP address in its identifying columns."""
    rows = [cmdb_row(n) for n in range(1, 5)]
    rows[1][1] = ""  # no name ...
    rows[1][4] = ""  # ... and no hostname: the row cannot be identified
    return write_csv(tmp_path / "some-invalid.csv", CMDB_HEADERS, rows)


def api_get(stack: ConsoleStack, key: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{stack.url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_the_tiles_come_from_the_category_registry(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    sign_in(browser, console_stack, console_stack.key_for(tenant))
    browser.get(f"{console_stack.url}/console/#/upload")
    tiles = wait_for(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".tile") or False, "the tiles"
    )
    assert [tile.find_element(By.TAG_NAME, "input").get_attribute("value") for tile in tiles] == (
        list(REGISTRY)
    )
    sensitive = browser.find_element(By.CSS_SELECTOR, "label[for=cat-sensitive_data]").text
    assert "pii_detector" in sensitive and "compliance_checker" in sensitive
    assert "CSV, XLSX, JSON" in sensitive
    screenshot(browser, "upload")


@pytest.mark.parametrize("category", list(SAMPLE_OF))
def test_upload_of_each_category_finishes_and_its_report_shows(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, category: str
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    data_import_id = upload(browser, console_stack, SAMPLES / SAMPLE_OF[category], category)
    status = wait_status(browser, *FINISHED)

    expected = api_get(console_stack, key, f"/imports/{data_import_id}").json()
    assert status == expected["status"]
    assert counter(browser, "Rows") == f"{expected['total_rows']:,}"
    assert counter(browser, "Valid") == f"{expected['valid_rows']:,}"
    assert int(counter(browser, "Rows").replace(",", "")) > 0
    phases = browser.find_elements(By.CSS_SELECTOR, "#timeline li")
    assert [li.get_attribute("data-phase") for li in phases] == [
        "upload",
        "validation",
        "enrichment",
        "complete",
    ]
    assert all("done" in (li.get_attribute("class") or "") for li in phases)
    assert all(li.find_element(By.CSS_SELECTOR, ".when").text for li in phases)
    agents = {
        row.find_elements(By.TAG_NAME, "td")[0].text
        for row in browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr")
    }
    registered = REGISTRY[category]
    assert set(agent_names(registered.masks_values, registered.agents)) <= agents
    sample_rows = browser.find_elements(By.CSS_SELECTOR, "#sample tbody tr")
    assert len(sample_rows) == 2
    if category == "sensitive_data":
        # Values of sensitive imports are masked wherever they leave staging.
        cells = [td.text for row in sample_rows for td in row.find_elements(By.TAG_NAME, "td")]
        raw = (SAMPLES / SAMPLE_OF[category]).read_text(encoding="utf-8").splitlines()[1]
        assert not any(cell and cell in raw.split(",") for cell in cells if len(cell) > 3)
    link = browser.find_element(By.CSS_SELECTOR, "#import a.temporal").get_attribute("href")
    assert link == f"{WEB_UI}/namespaces/default/workflows/data-import-{data_import_id}"
    screenshot(browser, f"import-{category}")

    browser.get(f"{console_stack.url}/console/#/imports")
    row = element(browser, f'a.import-link[data-id="{data_import_id}"]')
    assert row.text == SAMPLE_OF[category]


def test_imports_list_filters_and_links_every_import(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    sign_in(browser, console_stack, console_stack.key_for(tenant))
    cmdb = upload(browser, console_stack, SAMPLES / SAMPLE_OF["cmdb_export"], "cmdb_export")
    wait_status(browser, *FINISHED)
    apps = upload(browser, console_stack, SAMPLES / SAMPLE_OF["app_discovery"], "app_discovery")
    wait_status(browser, *FINISHED)
    browser.get(f"{console_stack.url}/console/#/imports")
    links = wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "a.import-link") or False,
        "the list",
    )
    assert [link.get_attribute("data-id") for link in links] == [apps, cmdb]  # newest first
    Select(browser.find_element(By.ID, "filter-category")).select_by_value("cmdb_export")
    shown = browser.find_elements(By.CSS_SELECTOR, "a.import-link")
    assert [link.get_attribute("data-id") for link in shown] == [cmdb]
    Select(browser.find_element(By.ID, "filter-category")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("failed")
    assert browser.find_elements(By.CSS_SELECTOR, "a.import-link") == []
    assert browser.find_element(By.CSS_SELECTOR, "#imports-table .empty").text
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("")
    temporal = browser.find_elements(By.CSS_SELECTOR, "#imports a.temporal")
    assert len(temporal) == 2
    screenshot(browser, "imports")


def test_report_by_code_and_rejected_rows_download(
    browser: WebDriver,
    console_stack: ConsoleStack,
    tenant: Tenant,
    tmp_path: Path,
    downloads: Path,
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    data_import_id = upload(browser, console_stack, some_invalid_csv(tmp_path), "cmdb_export")
    assert wait_status(browser, *FINISHED) == "completed_with_errors"
    assert counter(browser, "Invalid") == "1"

    codes = browser.find_elements(By.CSS_SELECTOR, "#findings section.code")
    report = api_get(console_stack, key, f"/imports/{data_import_id}/report").json()
    assert [code.get_attribute("data-code") for code in codes] == list(report["issues"])
    first = codes[0]
    entry = report["issues"][first.get_attribute("data-code")]
    assert entry["severity"] in first.text and f"{entry['count']:,}" in first.text
    example_rows = first.find_elements(By.CSS_SELECTOR, "tbody tr td:first-child")
    assert [td.text for td in example_rows] == [str(e["row"]) for e in entry["examples"]]
    screenshot(browser, "import-report")

    browser.find_element(By.ID, "download-failed-rows").click()
    target = downloads / f"import-{data_import_id}-failed-rows.csv"
    wait_for(browser, lambda _d: target.exists() and target.stat().st_size > 0, "the download")
    downloaded = target.read_bytes()
    expected = api_get(console_stack, key, f"/imports/{data_import_id}/failed-rows").content
    assert downloaded == expected
    rows = list(csv.reader(io.StringIO(downloaded.decode("utf-8"))))
    assert len(rows) == 2 and "A-000002" in rows[1]

    browser.find_element(By.ID, "download-errors").click()
    errors = downloads / f"import-{data_import_id}-errors.csv"
    wait_for(browser, lambda _d: errors.exists() and errors.stat().st_size > 0, "the errors")
    assert errors.read_bytes() == (
        api_get(console_stack, key, f"/imports/{data_import_id}/errors").content
    )


def test_a_refused_file_shows_its_reason_in_words(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    sign_in(browser, console_stack, console_stack.key_for(tenant))
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    browser.get(f"{console_stack.url}/console/#/upload")
    element(browser, "label[for=cat-cmdb_export]").click()
    browser.find_element(By.ID, "file").send_keys(str(binary))
    browser.find_element(By.ID, "upload-submit").click()
    message = element(browser, "#upload-error").text
    assert message.startswith(
        "The file is not a CSV, XLSX or JSON file this service can read (415)"
    )

    browser.find_element(By.ID, "file").send_keys(str(SAMPLES / SAMPLE_OF["cmdb_export"]))
    browser.find_element(By.ID, "processing-config").send_keys('{"max_invalid_ratio": 7}')
    browser.find_element(By.ID, "upload-submit").click()
    wait_for(
        browser,
        lambda d: "(422)" in d.find_element(By.ID, "upload-error").text,
        "the 422 reason",
    )
    assert "max_invalid_ratio" in browser.find_element(By.ID, "upload-error").text
    screenshot(browser, "upload-refused")


def test_the_same_request_id_lands_on_the_same_import(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    sign_in(browser, console_stack, console_stack.key_for(tenant))
    request_id = f"nightly-{uuid.uuid4()}"
    sample = SAMPLES / SAMPLE_OF["cmdb_export"]
    first = upload(browser, console_stack, sample, "cmdb_export", request_id=request_id)
    wait_status(browser, *FINISHED)
    again = upload(browser, console_stack, sample, "cmdb_export", request_id=request_id)
    assert again == first


def test_pages_are_readable_at_390_pixels(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    sign_in(browser, console_stack, console_stack.key_for(tenant))
    data_import_id = upload(
        browser, console_stack, SAMPLES / SAMPLE_OF["app_discovery"], "app_discovery"
    )
    wait_status(browser, *FINISHED)
    browser.set_window_size(390, 844)
    pages = ("#/upload", "#/imports", f"#/imports/{data_import_id}", "#/assets", "#/groups")
    for page in pages:
        browser.get(f"{console_stack.url}/console/{page}")
        element(browser, "#view h1")
        if page.startswith("#/imports/"):
            element(browser, "#sample")
        wide = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert wide == 0, f"{page} scrolls sideways by {wide}px at 390 px"
    screenshot(browser, "groups-390px")
