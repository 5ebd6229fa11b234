"""Sign in with an API key, see the tenant the page acts for, sign out; a bad key is refused."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from dataimport.auth import Scope
from dataimport.imports import Tenant
from tests.browser.conftest import ConsoleStack, element, screenshot, sign_in, wait_for


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
