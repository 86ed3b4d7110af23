"""The pages in a real browser: Debian's headless Chromium through its own chromedriver (never one
Selenium Manager downloads), phone-sized, and the services serving over real HTTP on ports chosen
before they start, so that the notifier's public_base_url and service_urls and every service's CORS
origin agree.

Selenium's calls block: a test runs them in a thread (`asyncio.to_thread`) while the services it
started serve on the test's event loop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import pytest_asyncio

from runtime.embedded import free_port
from tests.conftest import Running, served_over_http

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)  # a phone's viewport, in CSS pixels


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session. Missing: the tests fail saying what to install
    (`./fangpin test` installs it as root), they are not skipped."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"the browser tests need {' and '.join(missing)}: install Debian's chromium and chromium-driver "
                    "(as root: apt-get install --no-install-recommends chromium chromium-driver; ./fangpin test does)",
                    pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", f"--window-size={PHONE[0]},{PHONE[1]}", "--no-sandbox",  # tests run as root
                     "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})  # a household's phone
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@dataclass
class PagesSystem:
    system: Running  # the services, in-process (clients, tokens, contexts)
    urls: dict[str, str]  # each one's real address, as a browser reaches it


@pytest_asyncio.fixture
async def pages_system(run_services):
    """intake and the notifier (which serves the pages), each on a real port of this machine."""
    urls = {service: f"http://127.0.0.1:{free_port()}" for service in ("intake", "notifier")}
    async with run_services("intake", "notifier", public_base_url=urls["notifier"], service_urls=urls) as system:
        async with served_over_http(system.apps["intake"], _port(urls["intake"])), \
                served_over_http(system.apps["notifier"], _port(urls["notifier"])):
            yield PagesSystem(system, urls)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
