"""Browsers may call every service's API from the pages the notifier serves at the public address
(CORS): a preflight from that origin, or from one of `cors_origins`, is allowed; from any other, not.
No database: the middleware answers before any route runs. The embedded system's pages and APIs
move with its ports."""
import json
from pathlib import Path

import httpx
import pytest

from runtime.app import allowed_origins, create_app, load_definition
from runtime.embedded import EmbeddedSystem, service_ports
from runtime.settings import Settings

PUBLIC = "https://fangpin.county.gov.cn"


def _preflight(origin: str) -> dict:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}


@pytest.mark.parametrize("service", ["intake", "screening"])
async def test_a_preflight_from_the_public_origin_is_allowed_and_from_another_is_not(service):
    settings = Settings(environment="development", public_base_url=f"{PUBLIC}/", cors_origins=["http://console.local:9000"])
    app = create_app(load_definition(service), settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for origin in (PUBLIC, "http://console.local:9000"):
            allowed = await client.options("/v1/declarations", headers=_preflight(origin))
            assert allowed.status_code == 200, allowed.text
            assert allowed.headers["access-control-allow-origin"] == origin
            assert {"POST", "PUT", "GET"} <= set(allowed.headers["access-control-allow-methods"].split(", "))
            assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

        other = await client.options("/v1/declarations", headers=_preflight("https://evil.example"))
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        same_host_other_port = await client.options("/v1/declarations", headers=_preflight(f"{PUBLIC}:8443"))
        assert "access-control-allow-origin" not in same_host_other_port.headers

        # An actual answer (a refusal here) carries the header for the public origin only, so the page can
        # read a problem document; the Link header of a QR code is readable too.
        refused = await client.get("/v1/codes", headers={"Origin": PUBLIC})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == PUBLIC
        assert "Link" in refused.headers["access-control-expose-headers"]
        assert "access-control-allow-origin" not in (await client.get("/v1/codes", headers={"Origin": "https://evil.example"})).headers


def test_the_public_origin_leaves_out_path_and_default_port():
    def origins(url):
        return allowed_origins(Settings(public_base_url=url))

    assert origins("http://127.0.0.1:8105") == ["http://127.0.0.1:8105"]
    assert origins("https://Fangpin.County.gov.cn:443/base/") == ["https://fangpin.county.gov.cn"]
    assert origins("http://fangpin.example:8080/x") == ["http://fangpin.example:8080"]


def test_the_embedded_system_points_its_pages_at_its_own_ports_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("FANGPIN_SERVICE_URLS", raising=False)
    monkeypatch.delenv("FANGPIN_PUBLIC_BASE_URL", raising=False)
    system = EmbeddedSystem(Path("unused"), ports=service_ports(9101))
    env = system.address_env()
    assert json.loads(env["FANGPIN_SERVICE_URLS"])["intake"] == "http://127.0.0.1:9101"
    assert env["FANGPIN_PUBLIC_BASE_URL"] == "http://127.0.0.1:9105"
    settings = Settings(service_urls=json.loads(env["FANGPIN_SERVICE_URLS"]), public_base_url=env["FANGPIN_PUBLIC_BASE_URL"])
    assert allowed_origins(settings) == [settings.service_urls["notifier"]]

    monkeypatch.setenv("FANGPIN_PUBLIC_BASE_URL", "https://fangpin.county.gov.cn")
    assert "FANGPIN_PUBLIC_BASE_URL" not in system.address_env(), "a deployment's own address is kept"
