"""Sign in with an API key, see the tenant the page acts for, sign out; a bad key is refused."""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from dataimport.auth import Scope
from dataimport.imports import Tenant
from tests.e2e.browser.conftest import ConsoleStack, element, screenshot, sign_in, wait_for


def test_sign_in_shows_the_tenant_and_sign_out_forgets_the_key(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    key = console_stack.key_for(tenant, Scope.READ)
    browser.get(f"{console_stack.url}/")  # the API's root sends people to the console
    element(browser, "#api-key")
    assert browser.current_url.startswith(f"{console_stack.url}/console/")
    screenshot(browser, "sign-in")
    sign_in(browser, console_stack, key)
    assert element(browser, "#tenant-client").text == str(tenant.client_account_id)
    assert browser.find_element(By.ID, "tenant-engagement").text == str(tenant.engagement_id)
    assert browser.find_element(By.ID, "tenant-scope").text == "read"
    stored = browser.execute_script("return sessionStorage.getItem('dataimport.apiKey')")
    assert stored == key

    browser.find_element(By.ID, "sign-out").click()
    element(browser, "#api-key")
    assert browser.execute_script("return sessionStorage.getItem('dataimport.apiKey')") is None
    assert not browser.find_element(By.ID, "session").is_displayed()


def test_an_unknown_key_is_refused_in_words(
    browser: WebDriver, console_stack: ConsoleStack
) -> None:
    browser.get(f"{console_stack.url}/console/")
    element(browser, "#api-key").send_keys("dik_not_a_real_key_at_all")
    browser.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
    message = wait_for(browser, lambda d: d.find_element(By.ID, "flash").text or False, "a refusal")
    assert message.startswith("Sign-in refused:")
    assert "unknown, revoked or expired" in message
    assert browser.execute_script("return sessionStorage.getItem('dataimport.apiKey')") is None


UNLABELLED = """
return [...document.querySelectorAll('#view input, #view select, #view textarea, #view button')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 80));
"""


def test_every_control_has_a_label_and_the_tiles_work_by_keyboard(
    browser: WebDriver, console_stack: ConsoleStack, tenant: Tenant
) -> None:
    sign_in(browser, console_stack, console_stack.key_for(tenant))
    for page in ("#/upload", "#/imports", "#/assets", "#/dependencies", "#/groups"):
        browser.get(f"{console_stack.url}/console/{page}")
        element(browser, "#view h1")
        assert browser.execute_script(UNLABELLED) == [], page
    browser.get(f"{console_stack.url}/console/#/upload")
    first = element(browser, "#cat-cmdb_export")
    assert first.is_selected()
    first.send_keys(Keys.ARROW_RIGHT)  # a radio group: arrows move the choice
    assert browser.find_element(By.ID, "cat-app_discovery").is_selected()
    assert browser.switch_to.active_element.get_attribute("id") == "cat-app_discovery"
    # Tab order reaches the file picker and the upload button without a mouse.
    reached = set()
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()  # a real key press, wherever focus is
        reached.add(browser.switch_to.active_element.get_attribute("id"))
    assert {"file", "request-id", "processing-config", "upload-submit"} <= reached
