"""The staff console (工作台) in Chromium: a village cadre signs in with their token, a case opened
while the page is open reaches their inbox live (no reload), and they record the verification
visit's findings to screening across origins; a token the API refuses shows no inbox."""
from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from runtime.embedded import free_port
from tests.browser.conftest import PHONE, PagesSystem
from tests.conftest import eventually, served_over_http
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = [pytest.mark.browser, pytest.mark.integration]
SCREENSHOT = "/tmp/console.png"


@pytest_asyncio.fixture
async def console_system(run_services, browser):
    """intake (households, warnings), screening (cases) and the notifier (the console, the inbox), each
    on a real port, so that public_base_url, service_urls and CORS agree."""
    urls = {service: f"http://127.0.0.1:{free_port()}" for service in ("intake", "screening", "notifier")}
    async with run_services("intake", "screening", "notifier", public_base_url=urls["notifier"], service_urls=urls,
                            inbox_stream_poll_seconds=0.1) as system:
        async with served_over_http(system.apps["intake"], _port(urls["intake"])), \
                served_over_http(system.apps["screening"], _port(urls["screening"])), \
                served_over_http(system.apps["notifier"], _port(urls["notifier"])):
            try:
                yield PagesSystem(system, urls)
            finally:  # the page's open stream would keep the notifier's server from stopping
                await asyncio.to_thread(_leave, browser)


def _leave(driver) -> None:
    driver.get("about:blank")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _bare(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _wait(driver, css: str, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(shown.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _sign_in(driver, url: str, token: str) -> None:
    driver.get(url)
    driver.execute_script("sessionStorage.clear(); window.loadedOnce = 'this page'")
    driver.refresh()  # from a clean tab: the login form only
    _wait(driver, "#token").send_keys(token)
    driver.execute_script("window.loadedOnce = 'this page'")  # gone if the page reloads from now on
    driver.find_element(By.ID, "login-submit").click()


async def test_a_cadre_sees_a_new_case_live_and_records_the_verification_visit(console_system, browser):
    system, urls = console_system.system, console_system.urls
    intake, screening, notifier = (system.clients[s] for s in ("intake", "screening", "notifier"))
    county = system.token("county_officer", "410721")
    cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
    r = await notifier.post("/v1/staff", headers=county, json={
        "staff_id": "cadre-1", "name": "李村", "role": "village_cadre", "region_code": VILLAGE})
    assert r.status_code == 201, r.text
    assert (await intake.post("/v1/households", headers=county, json=household("H1", 1))).status_code == 201

    def sign_in() -> dict:
        browser.set_window_size(*PHONE)
        _sign_in(browser, f"{urls['notifier']}/console", _bare(cadre))
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "live").text)  # the stream is open
        return {"empty": _wait(browser, "#inbox-status").text, "items": len(browser.find_elements(By.CSS_SELECTOR, "#items li")),
                "url": browser.current_url, "stored": browser.execute_script("return sessionStorage.length")}

    before = await asyncio.to_thread(sign_in)
    assert before["items"] == 0 and before["empty"] == "暂无消息。", before
    assert "token" not in before["url"] and before["stored"] == 1

    # Now a warning opens a case on screening, which the notifier turns into the cadre's task.
    department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
    assert (await intake.post("/v1/warnings", headers=department, json=warning("MCA-1", id_number(1)))).status_code == 201

    def take_the_task() -> dict:
        item = _wait(browser, "#items li.unread", timeout=30)
        seen = {"item": item.text, "first": item.get_attribute("data-notification-id"), "unread": _wait(browser, "#unread-count").text,
                "loaded_once": browser.execute_script("return window.loadedOnce"),
                "count": len(browser.find_elements(By.CSS_SELECTOR, "#items li"))}
        item.click()
        form = _wait(browser, 'form[data-step="verification_visit"]')
        seen["step"] = _wait(browser, "#case-step").text
        seen["household"] = browser.find_element(By.ID, "case-household").text
        seen["acknowledge"] = browser.find_element(By.ID, "acknowledge").is_displayed()
        form.find_element(By.NAME, "per_capita_net_income").send_keys("6200")
        form.find_element(By.NAME, "rigid_expenditure").clear()
        form.find_element(By.NAME, "rigid_expenditure").send_keys("1500")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()  # a guarantee left out: refused
        seen["missing"] = WebDriverWait(browser, 20).until(
            lambda d: d.find_element(By.CSS_SELECTOR, '[data-error-for="education_ok"]').text)
        for name in ("education_ok", "medical_ok", "housing_safe", "water_safe"):
            form.find_element(By.CSS_SELECTOR, f'input[name="{name}"][value="true"]').click()
        form.find_element(By.NAME, "notes").send_keys("丈夫住院，收入骤减")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        seen["outcome"] = _wait(browser, "#outcome").text
        seen["after"] = browser.find_element(By.ID, "case-step").text
        browser.find_element(By.ID, "back").click()
        # The case now waits for the village deliberation, the cadre's too: a second task, live.
        WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#items li")) == 2)
        listed = browser.find_elements(By.CSS_SELECTOR, "#items li")
        seen["listed"] = [(li.get_attribute("data-notification-id"), li.get_attribute("class")) for li in listed]
        seen["unread_after"] = WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "unread-count").text == "1" and "1")
        listed[0].click()
        _wait(browser, 'form[data-step="village_deliberation"]')
        browser.save_screenshot(SCREENSHOT)
        seen["loaded_once_at_end"] = browser.execute_script("return window.loadedOnce")
        return seen

    seen = await asyncio.to_thread(take_the_task)
    assert seen["loaded_once"] == "this page" and seen["loaded_once_at_end"] == "this page", "the page reloaded"
    assert seen["count"] == 1 and seen["unread"] == "1", seen
    assert "入户核查" in seen["item"] or "核查" in seen["item"], seen["item"]
    assert seen["step"] == "入户核查" and seen["household"] == "H1" and seen["acknowledge"]
    assert seen["missing"], "the refused field was not shown beside the form"
    assert "村级评议" in seen["outcome"] and seen["after"] == "村级评议", seen
    first = seen["first"]
    assert [(id_ == first, "unread" in cls) for id_, cls in seen["listed"]] == [(False, True), (True, False)], seen["listed"]

    cases = (await screening.get("/v1/cases", headers=county)).json()["items"]
    assert [(c["household_id"], c["step"]) for c in cases] == [("H1", "village_deliberation")]
    case = (await screening.get(f"/v1/cases/{cases[0]['case_id']}", headers=county)).json()
    assert [h["event_type"] for h in case["history"]][:2] == ["VerificationCaseOpened", "HouseholdVerified"]
    inbox = (await notifier.get("/v1/inbox", headers=cadre)).json()["items"]  # the second read: opened for the picture
    assert [(n["notification_id"] == first, bool(n["read_at"]), n["reference"]) for n in inbox] == [
        (False, True, f"case:{cases[0]['case_id']}"), (True, True, f"case:{cases[0]['case_id']}")]


async def test_a_forged_token_shows_the_refusal_and_no_inbox(console_system, browser):
    system, urls = console_system.system, console_system.urls
    token = _bare(system.token("village_cadre", VILLAGE, sub="cadre-1"))
    header, claims, signature = token.split(".")
    middle = len(signature) // 2
    forged = f"{header}.{claims}.{signature[:middle]}{'A' if signature[middle] != 'A' else 'B'}{signature[middle + 1:]}"

    def sign_in_forged() -> dict:
        _sign_in(browser, f"{urls['notifier']}/console?lang=en", forged)
        refusal = _wait(browser, "#refused").text
        return {"refusal": refusal, "inbox": browser.find_element(By.ID, "inbox").is_displayed(),
                "login": browser.find_element(By.ID, "login").is_displayed(),
                "items": len(browser.find_elements(By.CSS_SELECTOR, "#items li")),
                "stored": browser.execute_script("return sessionStorage.length")}

    seen = await asyncio.to_thread(sign_in_forged)
    assert seen["refusal"] == "This token is not valid or not accepted; ask for a new one."
    assert not seen["inbox"] and not seen["login"] and seen["items"] == 0 and seen["stored"] == 0
