"""The household's declaration page (一户一码, 一键申报) in Chromium: the QR code's link opens it, the
household sees itself masked, picks its difficulties and declares them to intake across origins; a
link without a valid household token shows no household at all."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from runtime.auth import issue_token
from tests.factories import household, id_number

pytestmark = [pytest.mark.browser, pytest.mark.integration]
HEAD = "王建国"
MASKED = "王*国"
VILLAGE = "示范镇1示范村1"  # tests.factories.VILLAGE's name in the demo region table


async def _registered_with_link(pages, household_id: str = "D1") -> str:
    """Registers a household whose head is HEAD and answers the link of its QR code."""
    intake, county = pages.system.clients["intake"], pages.system.token("county_officer", "410721")
    body = household(household_id, 1)
    body["members"][0]["name"] = HEAD
    assert (await intake.post("/v1/households", headers=county, json=body)).status_code == 201
    qr = await intake.get(f"/v1/households/{household_id}/qr", headers=county)
    link = qr.headers["link"].split(">")[0].lstrip("<")
    assert link.startswith(f"{pages.urls['notifier']}/declare?token="), link
    return link


def _wait(driver, css: str, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(shown.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


async def test_a_household_opens_its_qr_link_sees_itself_masked_and_declares(pages_system, browser):
    link = await _registered_with_link(pages_system)

    def declare() -> dict:
        browser.get(link)
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "household-head").text)
        seen = {"head": _text(browser, "#household-head"), "village": _text(browser, "#household-village"),
                "members": _text(browser, "#household-members"), "source": browser.page_source}
        for risk in ("illness", "expense_surge"):
            browser.find_element(By.CSS_SELECTOR, f"input[name=risk_types][value={risk}]").click()
        browser.find_element(By.ID, "description").send_keys("丈夫住院，医药费花了三万多")
        browser.find_element(By.ID, "phone").send_keys("13800000000")
        browser.find_element(By.ID, "submit").click()
        _wait(browser, "#done")
        seen["declaration_id"] = _text(browser, "#declaration-id")
        seen["done"] = _text(browser, "#done")
        return seen

    seen = await asyncio.to_thread(declare)
    assert (seen["head"], seen["village"], seen["members"]) == (MASKED, VILLAGE, "2")
    assert HEAD not in seen["source"] and "建国" not in seen["source"], "the full name reached the page"
    assert "村里会在规定时间内入户核实" in seen["done"]

    intake, county = pages_system.system.clients["intake"], pages_system.system.token("county_officer", "410721")
    clues = (await intake.get("/v1/clues?channel=self_declaration", headers=county)).json()["items"]
    assert [(c["household_id"], c["risk_types"]) for c in clues] == [("D1", ["illness", "expense_surge"])]
    async with pages_system.system.context("intake").sessions() as session:
        recorded = (await session.execute(sa.text("select household_id, risk_types, description, clue_id from declarations "
                                                  "where declaration_id = :id"), {"id": seen["declaration_id"]})).one()
    assert tuple(recorded) == ("D1", ["illness", "expense_surge"], "丈夫住院，医药费花了三万多", clues[0]["clue_id"])


async def test_intakes_field_errors_are_shown_beside_their_fields_and_nothing_is_declared(pages_system, browser):
    link = await _registered_with_link(pages_system)

    def declare_badly() -> dict:
        browser.get(link + "&lang=en")
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "household-head").text)
        browser.find_element(By.ID, "submit").click()  # nothing picked: the page says so itself
        unpicked = _wait(browser, "[data-error-for=risk_types]").text
        browser.find_element(By.CSS_SELECTOR, "input[name=risk_types][value=water]").click()
        browser.find_element(By.ID, "phone").send_keys("12")  # intake refuses it: a problem document
        browser.find_element(By.ID, "submit").click()
        phone_error = _wait(browser, "[data-error-for=phone]").text
        return {"unpicked": unpicked, "phone": phone_error, "done": browser.find_element(By.ID, "done").is_displayed(),
                "title": browser.find_element(By.TAG_NAME, "h1").text}

    seen = await asyncio.to_thread(declare_badly)
    assert seen["title"] == "Declare a difficulty"
    assert seen["unpicked"] == "Choose at least one difficulty"
    assert seen["phone"] == "Enter a valid phone number (6 to 20 digits)" and not seen["done"]
    async with pages_system.system.context("intake").sessions() as session:
        assert (await session.execute(sa.text("select count(*) from declarations"))).scalar() == 0


async def test_a_link_without_a_valid_household_token_shows_no_household(pages_system, browser):
    link = await _registered_with_link(pages_system)
    page = f"{pages_system.urls['notifier']}/declare"
    token = parse_qs(urlsplit(link).query)["token"][0]
    header, claims, signature = token.split(".")
    middle = len(signature) // 2  # not the last character: its low bits may be padding that decodes alike
    forged = f"{header}.{claims}.{signature[:middle]}{'A' if signature[middle] != 'A' else 'B'}{signature[middle + 1:]}"
    settings = pages_system.system.settings["notifier"]
    expired = issue_token(settings, sub="D1", role="household", kind="household", region="410721001001",
                          ttl=timedelta(days=1), now=datetime.now(timezone.utc) - timedelta(days=2))
    staff = issue_token(settings, sub="cadre-1", role="village_cadre", region="410721001001")
    links = {"no token": (page, 401), "forged": (f"{page}?token={forged}", 401),
             "expired": (f"{page}?token={expired}", 401), "staff": (f"{page}?token={staff}", 403)}

    async with httpx.AsyncClient() as client:
        for name, (url, status) in links.items():
            assert (await client.get(url)).status_code == status, name

    def open_each() -> dict:
        seen = {}
        for name, (url, _) in links.items():
            browser.get(url)
            seen[name] = (_wait(browser, "#link-invalid").text, browser.page_source)
        return seen

    for name, (text, source) in (await asyncio.to_thread(open_each)).items():
        assert "请向村两委干部或网格员索取新的政策明白卡" in text, name
        for household_data in ("D1", MASKED, HEAD, VILLAGE, id_number(1)[:6] + "*"):
            assert household_data not in source, f"{name}: {household_data} shown"
        echoed = links[name][0].partition("token=")[2]
        assert 'id="declaration"' not in source and (not echoed or echoed not in source), f"{name}: a form or the token"
