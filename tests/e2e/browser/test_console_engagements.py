"""The engagement picker: a key of two engagements acts for the one chosen in the page, each
showing only its own imports; an engagement the key does not grant is refused (403)."""

from __future__ import annotations

import uuid

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from dataimport.auth import Scope, keys
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
FINISHED = ("completed", "completed_with_errors")


def listed(driver: WebDriver) -> set[str]:
    """The import ids the imports page lists, once it has drawn its table (or 'No imports')."""
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#imports-table table, #imports-table .empty"),
        "the imports table",
    )
    links = driver.find_elements(By.CSS_SELECTOR, "a.import-link")
    return {str(link.get_attribute("data-id")) for link in links}


def choose(driver: WebDriver, engagement: uuid.UUID) -> None:
    Select(element(driver, "#engagement-picker")).select_by_value(str(engagement))
    wait_for(
        driver,
        lambda d: str(engagement) in d.find_element(By.ID, "flash").text,
        "the page acting for the chosen engagement",
    )


def test_a_key_of_two_engagements_switches_between_their_imports(
    browser: WebDriver, console_stack: ConsoleStack
) -> None:
    client, first, second, ungranted = (uuid.uuid4() for _ in range(4))
    key = console_stack.run(
        lambda: keys.create_key(
            console_stack.owner_engine, client, [first, second], Scope.WRITE, name="two"
        )
    ).key
    sign_in(browser, console_stack, key)
    picker = Select(element(browser, "#engagement-picker"))
    assert [o.get_attribute("value") for o in picker.options] == [str(first), str(second)]
    assert picker.first_selected_option.get_attribute("value") == str(first)  # the default

    in_first = upload(browser, console_stack, SAMPLES / "homegrown_cmdb.csv", "cmdb_export")
    wait_status(browser, *FINISHED)
    browser.get(f"{console_stack.url}/console/#/imports")
    assert listed(browser) == {in_first}

    choose(browser, second)
    assert listed(browser) == set()
    screenshot(browser, "engagement-picker-switched")
    in_second = upload(browser, console_stack, SAMPLES / "homegrown_cmdb.csv", "cmdb_export")
    wait_status(browser, *FINISHED)
    browser.get(f"{console_stack.url}/console/#/imports")
    assert listed(browser) == {in_second}
    # The first engagement's import, by URL, answers like one that does not exist.
    browser.get(f"{console_stack.url}/console/#/imports/{in_first}")
    message = wait_for(browser, lambda d: d.find_element(By.ID, "flash").text or False, "404")
    assert message == f"Not found: no import {in_first}"

    browser.get(f"{console_stack.url}/console/#/imports")
    choose(browser, first)
    assert listed(browser) == {in_first}
    screenshot(browser, "engagement-picker")

    # The API decides: an engagement the key does not grant is 403, a granted one answers.
    auth = {"Authorization": f"Bearer {key}"}
    base = f"{console_stack.url}/api/v1"
    for path in ("/imports", "/whoami", f"/imports/{in_first}", "/assets"):
        refused = httpx.get(base + path, headers={**auth, "X-Engagement-ID": str(ungranted)})
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "tenant-not-granted"
    second_list = httpx.get(base + "/imports", headers={**auth, "X-Engagement-ID": str(second)})
    assert [item["data_import_id"] for item in second_list.json()["items"]] == [in_second]
    tenant_of = httpx.get(
        f"{base}/imports/{in_second}", headers={**auth, "X-Engagement-ID": str(second)}
    )
    assert tenant_of.status_code == 200

    # Nor can the page be made to act for it: a tampered choice falls back to the default.
    browser.execute_script(
        "sessionStorage.setItem('dataimport.engagement', arguments[0]); location.reload();",
        str(ungranted),
    )
    message = wait_for(browser, lambda d: d.find_element(By.ID, "flash").text or False, "refused")
    assert message.startswith("Refused: this credential is not for that engagement")
    assert listed(browser) == {in_first}
    picker = Select(element(browser, "#engagement-picker"))
    assert picker.first_selected_option.get_attribute("value") == str(first)
    assert [o.get_attribute("value") for o in picker.options] == [str(first), str(second)]
