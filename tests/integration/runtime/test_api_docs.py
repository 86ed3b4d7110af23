"""/docs and /redoc work on a PC that reaches the services and nothing else (issue 14, item 7):
every script, stylesheet and icon the pages load is served by the service itself, in both modes
that have pages (open, and behind an operator's token)."""
import re

import pytest

pytestmark = pytest.mark.integration

# What a page loads or fetches: src= and href= of its tags, ReDoc's spec-url=, Swagger UI's url:.
REFERENCES = re.compile(r"""(?:\bsrc|\bhref|\bspec-url)\s*=\s*["']([^"']+)["']|\burl:\s*["']([^"']+)["']""")


def _references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCES.findall(html)]


@pytest.mark.parametrize("docs_access", ["open", "token"])
async def test_docs_pages_load_every_asset_from_the_service_itself(run_services, docs_access):
    async with run_services("intake", docs_access=docs_access) as system:
        intake = system.clients["intake"]
        operator = system.token("operator", kind="system", sub="ops") if docs_access == "token" else {}
        for page, needs in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "/openapi.json")),
                            ("/redoc", ("redoc.standalone.js", "/openapi.json"))):
            r = await intake.get(page, headers=operator)
            assert r.status_code == 200, (page, r.text)
            html = r.text
            assert not re.search(r"https?://|(?<![:\w])//\w", html), f"{page} names a host outside the service:\n{html}"
            references = _references(html)
            for wanted in needs:
                assert any(ref.endswith(wanted) for ref in references), (page, wanted, references)
            for ref in references:
                assert ref.startswith("/"), (page, ref)
                # The assets are static files holding no data: open even when the pages need a token.
                fetched = await intake.get(ref, headers=operator if ref == "/openapi.json" else {})
                assert fetched.status_code == 200, (page, ref, fetched.status_code)
                assert len(fetched.content) > 1000, (page, ref)
            script = next(ref for ref in references if ref.endswith(".js"))
            assert (await intake.get(script)).headers["content-type"].startswith(("text/javascript", "application/javascript"))
