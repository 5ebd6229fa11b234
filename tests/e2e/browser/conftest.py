"""The console under a real headless Chromium: the real API (uvicorn) and a worker in a thread.

The API process and its worker run in one thread with their own event loop, as `dataimport up`
runs them, against the session's PostgreSQL and Temporal dev server; the tests themselves are
plain synchronous Selenium, so nothing they block is needed by the stack. The stack uses its
own task queue, so the in-process worker of the other tests never sees its workflows.

Screenshots of every page go to test-artifacts/console/ (gitignored).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from activities import build_activities
from dataimport.api import create_app
from dataimport.auth import Scope, keys
from dataimport.db import create_engine
from dataimport.imports import Tenant
from dataimport.settings import Settings
from service.temporal import connect_client
from tests.factories import (
    STAND_IN_KEY,
    STAND_IN_MODEL,
    StandIn,
)
from workflows.data_import import DataImportWorkflow

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CONSOLE_QUEUE = "test-console"
WAIT_SECONDS = 90  # an upper bound for waits that poll, never an assertion on time
# The Temporal UI address the page links to (the test dev server runs headless).
WEB_UI = "http://127.0.0.1:8233"


@dataclass
class ConsoleStack:
    """The running API + worker: its base URL, and a way to run coroutines on its loop."""

    url: str
    loop: asyncio.AbstractEventLoop
    owner_engine: AsyncEngine
    app_engine: AsyncEngine

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_awaited(make), self.loop)
        return future.result(timeout=WAIT_SECONDS)

    def key_for(self, tenant: Tenant, scope: Scope = Scope.WRITE) -> str:
        """A new API key of the tenant (the key decides the tenant the page acts for)."""
        issued = self.run(
            lambda: keys.create_key(
                self.owner_engine,
                tenant.client_account_id,
                [tenant.engagement_id],
                scope,
                name="browser test",
            )
        )
        return issued.key


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def model_stand_in() -> Iterator[StandIn]:
    """The OpenAI-compatible stand-in of the model-agent tests: imports that opt in get its
    column_mapping advice, which the console pre-fills in the mapping editor."""
    server = StandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def console_settings(settings: Settings, model_stand_in: StandIn) -> Settings:
    update: dict[str, Any] = {
        "task_queue": CONSOLE_QUEUE,
        "web_ui_url": WEB_UI,
        "llm_base_url": model_stand_in.base_url,
        "llm_model": STAND_IN_MODEL,
        "llm_api_key": STAND_IN_KEY,
        "llm_timeout_seconds": 10.0,
    }
    return settings.model_copy(update=update)


@pytest.fixture(scope="session")
def console_stack(console_settings: Settings, database_url: str) -> Iterator[ConsoleStack]:
    port = _free_port()
    ready: Future[ConsoleStack] = Future()
    loop = asyncio.new_event_loop()
    server_box: list[uvicorn.Server] = []

    async def serve() -> None:
        owner = create_engine(database_url, pool_size=4)
        engine = create_engine(console_settings.resolved_database_url(), pool_size=10)
        client = await connect_client(console_settings)
        app = create_app(console_settings, engine, client)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        server_box.append(server)
        try:
            async with Worker(
                client,
                task_queue=CONSOLE_QUEUE,
                workflows=[DataImportWorkflow],
                activities=build_activities(engine, settings=console_settings),
                max_concurrent_activities=8,
            ):
                ready.set_result(ConsoleStack(f"http://127.0.0.1:{port}", loop, owner, engine))
                await server.serve()
        finally:
            await engine.dispose()
            await owner.dispose()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as error:  # surface a start-up failure to the fixture
            if not ready.done():
                ready.set_exception(error)
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="console-stack", daemon=True)
    thread.start()
    stack = ready.result(timeout=WAIT_SECONDS)
    _wait_serving(stack.url)
    yield stack
    if server_box:
        server_box[0].should_exit = True
    thread.join(timeout=WAIT_SECONDS)


def _wait_serving(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{url}/console/", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the console never answered at {url}")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


def _driver(download_dir: Path, width: int = 1280, height: int = 900) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        },
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
    )
    return driver


@pytest.fixture
def browser(downloads: Path) -> Iterator[WebDriver]:
    driver = _driver(downloads)
    yield driver
    driver.quit()


@pytest.fixture
def second_browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Another browser (its own sessionStorage): another person at another desk."""
    folder = tmp_path / "second-downloads"
    folder.mkdir()
    driver = _driver(folder)
    yield driver
    driver.quit()


# ----- page helpers the tests share ---------------------------------------------------------


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    # A polling page redraws itself: an element read mid-redraw is stale, so look again.
    waiting = WebDriverWait(
        driver,
        WAIT_SECONDS,
        poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return waiting.until(condition, what)


def element(driver: WebDriver, css: str) -> WebElement:
    found: WebElement = wait_for(
        driver, ec.visibility_of_element_located((By.CSS_SELECTOR, css)), f"visible {css}"
    )
    return found


def sign_in(driver: WebDriver, stack: ConsoleStack, key: str) -> None:
    driver.get(f"{stack.url}/console/")
    field = element(driver, "#api-key")
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#sign-in button[type=submit]").click()
    element(driver, "#session")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#imports-table"), "imports")


def screenshot(driver: WebDriver, name: str, target: Path | None = None) -> Path:
    """The whole page, beyond the window's height (Chromium's DevTools protocol)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = target or ARTIFACTS / f"{name}.png"
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}},
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def upload(driver: WebDriver, stack: ConsoleStack, file: Path, category: str, **fields: str) -> str:
    """Upload through the form; returns the new import's id (from the page it lands on)."""
    driver.get(f"{stack.url}/console/#/upload")
    element(driver, f"label[for=cat-{category}]").click()
    driver.find_element(By.ID, "file").send_keys(str(file))
    if "request_id" in fields:
        driver.find_element(By.ID, "request-id").send_keys(fields["request_id"])
    if "processing_config" in fields:
        driver.find_element(By.ID, "processing-config").send_keys(fields["processing_config"])
    driver.find_element(By.ID, "upload-submit").click()
    page = element(driver, "#import")
    return str(page.get_attribute("data-id"))


def wait_status(driver: WebDriver, *statuses: str) -> str:
    """Wait until the open import page shows one of `statuses` (the page polls by itself)."""

    def shown(d: WebDriver) -> str | bool:
        status = d.execute_script(
            "const b = document.querySelector('#import h1 .badge');"
            "return b ? b.dataset.status : null;"
        )
        return status if status in statuses else False

    found: str = wait_for(driver, shown, f"status in {statuses}")
    return found


def counter(driver: WebDriver, name: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'[data-counter="{name}"] dd').text
