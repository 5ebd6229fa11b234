"""Inventory views: assets (search, filters, one asset's fields with the import that last set
each), dependencies, move groups and the dependency graph of one, drawn with the vendored
Cytoscape.js, ports on hover."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

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
from tests.factories import CMDB_HEADERS, cmdb_row, write_csv

SAMPLES = ROOT / "dataimport" / "samples"
FINISHED = ("completed", "completed_with_errors")


def api_json(stack: ConsoleStack, key: str, path: str, **params: str | int) -> dict:
    response = httpx.get(
        f"{stack.url}/api/v1{path}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def names_shown(driver: WebDriver) -> list[str]:
    # Read in one script: the list is redrawn as filters change (no stale elements).
    names: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#assets .asset-name')].map(b => b.textContent)"
    )
    return names


def test_assets_search_filters_and_fields(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    cmdb = upload(browser, console_stack, SAMPLES / "servicenow_cmdb_ci_server.csv", "cmdb_export")
    wait_status(browser, *FINISHED)
    upload(browser, console_stack, SAMPLES / "rvtools_export.xlsx", "infrastructure")
    wait_status(browser, *FINISHED)

    browser.get(f"{console_stack.url}/console/#/assets")
    wait_for(browser, lambda d: names_shown(d) or False, "the assets")
    every = api_json(console_stack, key, "/assets", limit=100)["items"]
    assert names_shown(browser) == [a["name"] for a in every]

    Select(browser.find_element(By.ID, "asset-source")).select_by_value("cmdb_export")
    from_cmdb = api_json(console_stack, key, "/assets", source_category="cmdb_export")["items"]
    assert from_cmdb and len(from_cmdb) < len(every)
    assert all(a["source_import_id"] == cmdb for a in from_cmdb)
    wait_for(browser, lambda d: names_shown(d) == [a["name"] for a in from_cmdb], "cmdb only")

    Select(browser.find_element(By.ID, "asset-source")).select_by_value("")
    environment = next(a["environment"] for a in every if a["environment"])
    Select(browser.find_element(By.ID, "asset-environment")).select_by_value(environment)
    expected = [a["name"] for a in every if a["environment"] == environment]
    wait_for(browser, lambda d: names_shown(d) == expected, "one environment")
    Select(browser.find_element(By.ID, "asset-environment")).select_by_value("")
    asset_type = every[0]["asset_type"]
    Select(browser.find_element(By.ID, "asset-type")).select_by_value(asset_type)
    expected = [a["name"] for a in every if a["asset_type"] == asset_type]
    wait_for(browser, lambda d: names_shown(d) == expected, "one type")
    Select(browser.find_element(By.ID, "asset-type")).select_by_value("")

    target = from_cmdb[0]
    search = browser.find_element(By.ID, "asset-search")
    search.send_keys(target["name"])
    browser.find_element(By.ID, "asset-filter").click()
    wait_for(
        browser,
        lambda d: target["name"] in names_shown(d) and len(names_shown(d)) < len(every),
        "search",
    )
    browser.find_element(By.CSS_SELECTOR, "#assets .asset-name").click()
    detail = element(browser, "#asset-detail dl")
    fields = {
        div.find_element(By.TAG_NAME, "dt").text: div.find_element(By.TAG_NAME, "dd").text
        for div in detail.find_elements(By.CSS_SELECTOR, "div")
    }
    assert fields["name"] == target["name"]
    assert fields["asset_type"] == target["asset_type"]
    assert fields["source_import_id"] == cmdb
    assert browser.switch_to.active_element.get_attribute("id") == "asset-title"  # keyboard focus
    screenshot(browser, "assets")


def test_an_assets_fields_name_the_import_that_last_set_each(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant, tmp_path: Path
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    first_file = write_csv(tmp_path / "cmdb-monday.csv", CMDB_HEADERS, [cmdb_row(1)])
    first = upload(browser, console_stack, first_file, "cmdb_export")
    wait_status(browser, *FINISHED)
    row = cmdb_row(1)
    row[CMDB_HEADERS.index("owner")] = "Platform Team"
    row[CMDB_HEADERS.index("location")] = ""  # blank: Monday's location stays
    second_file = write_csv(tmp_path / "cmdb-tuesday.csv", CMDB_HEADERS, [row])
    second = upload(browser, console_stack, second_file, "cmdb_export")
    wait_status(browser, *FINISHED)

    browser.get(f"{console_stack.url}/console/#/assets")
    wait_for(browser, lambda d: names_shown(d) == ["SRV-000001"], "the asset")
    browser.find_element(By.CSS_SELECTOR, "#assets .asset-name").click()
    element(browser, '#asset-detail [data-field="owner"] .field-source-link')
    shown = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#asset-detail [data-field]')]"
        ".map(d => { const a = d.querySelector('.field-source-link');"
        " return [d.dataset.field, [d.querySelector('dd').textContent,"
        " a ? a.textContent : null, a ? a.getAttribute('href') : null]]; }))"
    )
    assert shown["owner"] == ["Platform Team", "cmdb-tuesday.csv", f"#/imports/{second}"]
    assert shown["location"] == ["Frankfurt", "cmdb-monday.csv", f"#/imports/{first}"]
    assert shown["name"][1:] == ["cmdb-tuesday.csv", f"#/imports/{second}"]
    assert shown["id"][1:] == [None, None]  # not a field an import sets
    sources = api_json(console_stack, key, f"/assets/{shown['id'][0]}")["field_sources"]
    linked = {field: href for field, (_, _, href) in shown.items() if href}
    assert linked == {f: f"#/imports/{s['data_import_id']}" for f, s in sources.items()}
    screenshot(browser, "asset-field-sources")

    # The link opens the import that set the field.
    element(browser, '#asset-detail [data-field="location"] .field-source-link').click()
    page = element(browser, "#import")
    assert page.get_attribute("data-id") == first


def test_dependencies_and_the_graph_of_a_move_group(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    key = console_stack.key_for(tenant)
    sign_in(browser, console_stack, key)
    upload(browser, console_stack, SAMPLES / "azure_migrate_dependencies.csv", "app_discovery")
    wait_status(browser, *FINISHED)

    browser.get(f"{console_stack.url}/console/#/dependencies")
    element(browser, "#dependencies")
    shown = browser.find_elements(By.CSS_SELECTOR, "#dependencies tbody tr")
    every = api_json(console_stack, key, "/dependencies", limit=200)["items"]
    assert len(shown) == len(every) > 0
    screenshot(browser, "dependencies")

    groups = api_json(console_stack, key, "/dependency-groups")["items"]
    assert groups
    largest = groups[0]
    browser.get(f"{console_stack.url}/console/#/groups")
    element(browser, f'a.group-link[href="#/groups/{largest["group"]}"]').click()
    element(browser, "#graph canvas")
    summary = element(browser, "#graph-summary").text
    assert summary == f"{largest['assets']} assets · {largest['dependencies']} dependencies"
    drawn = browser.execute_script(
        "return [consoleGraph.nodes().length, consoleGraph.edges().length,"
        " consoleGraph.nodes().map(n => n.data('label')).sort()]"
    )
    members = api_json(console_stack, key, "/assets", dependency_group=largest["group"])["items"]
    assert drawn[0] == largest["assets"] and drawn[1] == largest["dependencies"]
    assert drawn[2] == sorted(a["name"] for a in members)
    label = browser.find_element(By.ID, "graph").get_attribute("aria-label") or ""
    assert label.endswith(f"{largest['assets']} assets, {largest['dependencies']} dependencies")

    # Hover the middle of an edge that has a port, with the real mouse.
    edge = browser.execute_script(
        "const e = consoleGraph.edges().filter(e => e.data('ports').includes('/'))[0]"
        " || consoleGraph.edges()[0];"
        "const p = e.renderedMidpoint(); const c = consoleGraph.container();"
        "return {x: p.x, y: p.y, w: c.clientWidth, h: c.clientHeight, ports: e.data('ports')};"
    )
    canvas = browser.find_element(By.ID, "graph")
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(edge["x"] - edge["w"] / 2), int(edge["y"] - edge["h"] / 2)
    ).perform()
    tip = wait_for(browser, lambda d: d.find_element(By.ID, "graph-tip").text or False, "the tip")
    assert edge["ports"] and edge["ports"] in tip
    screenshot(browser, "graph")
