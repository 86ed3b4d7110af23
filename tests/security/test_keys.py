"""Keys (issue 13): a deployment refuses the development keys at its container entrypoint; a key
rotation reads old tokens and records with the old key, writes new ones with the new key, and a
re-encryption leaves nothing needing the old one."""
import asyncio
import json
import secrets
import subprocess
import time

import httpx
import pytest
import sqlalchemy as sa

import jwt as pyjwt

from runtime.auth import decode_token, issue_token
from runtime.db import ensure_database
from runtime.embedded import free_port
from runtime.keys import local_keys
from runtime.problems import Problem
from runtime.settings import Settings
from runtime.startup import REFUSED_EXIT_CODE
from services.intake.vault import IdentityVault
from tests.factories import household
from tests.security.container import DEPLOYMENT_DATA, ROOT, container_environment, run_container

pytestmark = pytest.mark.integration


def test_the_container_refuses_to_start_with_any_development_key():
    port = free_port()
    refused = run_container({"FANGPIN_HTTP_PORT": str(port)})
    assert refused.returncode == REFUSED_EXIT_CODE, refused.stderr
    for name in ("FANGPIN_JWT_SECRET", "FANGPIN_ID_HASH_KEY", "FANGPIN_ID_ENCRYPTION_KEY", "FANGPIN_AUDIT_SIGNING_KEY"):
        assert f"{name} is the built-in development key" in refused.stderr, refused.stderr
    assert "fangpin keys new" in refused.stderr

    # One key of its own is not enough: the others are still named; a weak secret is named too.
    own = {"FANGPIN_HTTP_PORT": str(port), "FANGPIN_ID_HASH_KEY": secrets.token_hex(32), "FANGPIN_JWT_SECRET": "short"}
    refused = run_container(own)
    assert refused.returncode == REFUSED_EXIT_CODE
    assert "FANGPIN_ID_ENCRYPTION_KEY is the built-in development key" in refused.stderr
    assert "FANGPIN_AUDIT_SIGNING_KEY is the built-in development key" in refused.stderr
    assert "FANGPIN_JWT_SECRET is shorter than 32 bytes" in refused.stderr
    assert "FANGPIN_ID_HASH_KEY" not in refused.stderr

    # An old key kept for rotation may not be a development key either.
    fresh = {"FANGPIN_JWT_SECRET": secrets.token_urlsafe(48), "FANGPIN_ID_HASH_KEY": secrets.token_hex(32),
             "FANGPIN_ID_ENCRYPTION_KEY": secrets.token_hex(32), "FANGPIN_AUDIT_SIGNING_KEY": secrets.token_hex(32)}
    refused = run_container({"FANGPIN_HTTP_PORT": str(port), **fresh, "FANGPIN_ID_ENCRYPTION_KEY_ID": "2",
                             "FANGPIN_ID_ENCRYPTION_OLD_KEYS": json.dumps({"1": "3c" * 32})})
    assert refused.returncode == REFUSED_EXIT_CODE
    assert "FANGPIN_ID_ENCRYPTION_OLD_KEYS[1] is the built-in development key" in refused.stderr
    assert "FANGPIN_AUDIT_SIGNING_KEY" not in refused.stderr

    # The audit signing key is an Ed25519 seed: 32 bytes in hex, like the ID keys.
    refused = run_container({"FANGPIN_HTTP_PORT": str(port), **fresh, "FANGPIN_AUDIT_SIGNING_KEY": "not-hex"})
    assert refused.returncode == REFUSED_EXIT_CODE
    assert "FANGPIN_AUDIT_SIGNING_KEY is not 64 hex digits (32 bytes)" in refused.stderr


def test_the_container_starts_with_keys_of_its_own(postgres, broker, tmp_path):
    """The refusal is about the keys: with its own, the same entrypoint serves (and with the
    development keys, only when it is told it is a development machine)."""
    fresh = local_keys(tmp_path, create=True)  # what `fangpin up` makes on a first start
    assert set(fresh) == {"FANGPIN_JWT_SECRET", "FANGPIN_ID_HASH_KEY", "FANGPIN_ID_ENCRYPTION_KEY", "FANGPIN_AUDIT_SIGNING_KEY"}
    assert (tmp_path / "keys.env").stat().st_mode & 0o777 == 0o600
    for keys in ({**fresh, **DEPLOYMENT_DATA}, {"FANGPIN_ENVIRONMENT": "development"}):
        port = free_port()
        command, env = container_environment({
            **keys, "FANGPIN_HTTP_PORT": str(port), "FANGPIN_HTTP_HOST": "127.0.0.1",
            "FANGPIN_DATABASE_URL": postgres.url(f"keys_{port}_intake"), "FANGPIN_KAFKA_BOOTSTRAP": broker.bootstrap,
            "FANGPIN_TOPIC_PREFIX": f"keys{port}."})
        asyncio.run(ensure_database(env["FANGPIN_DATABASE_URL"]))
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert process.poll() is None, process.stdout.read().decode()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            else:
                pytest.fail("the service did not answer within 60 s")
        finally:
            process.terminate()
            process.wait(30)


def test_the_keys_file_of_a_system_made_before_the_audit_signing_key_gets_one_at_its_next_start(tmp_path, monkeypatch):
    monkeypatch.delenv("FANGPIN_AUDIT_SIGNING_KEY", raising=False)
    older = "FANGPIN_JWT_SECRET=s\nFANGPIN_ID_HASH_KEY=" + "1" * 64 + "\nFANGPIN_ID_ENCRYPTION_KEY=" + "2" * 64 + "\n"
    (tmp_path / "keys.env").write_text(older)
    assert "FANGPIN_AUDIT_SIGNING_KEY" not in local_keys(tmp_path, create=False)  # a read changes nothing
    keys = local_keys(tmp_path, create=True)
    assert (tmp_path / "keys.env").read_text().startswith(older)  # the keys it had are kept as they were
    assert len(bytes.fromhex(keys["FANGPIN_AUDIT_SIGNING_KEY"])) == 32
    assert local_keys(tmp_path, create=True) == keys  # made once


async def _sealed_key_ids(system) -> dict[str, int]:
    async with system.context("intake").sessions() as session:
        rows = (await session.execute(sa.text(
            "select id_cipher, name_cipher from members"))).all()
    ids: dict[str, int] = {}
    for row in rows:
        for blob in row:
            key_id = bytes(blob[2:2 + blob[1]]).decode()
            ids[key_id] = ids.get(key_id, 0) + 1
    return ids


async def test_a_key_rotation_reads_old_records_and_tokens_and_writes_new_ones_with_the_new_key(run_services):
    first = {"jwt_secret": secrets.token_urlsafe(48), "id_encryption_key": secrets.token_hex(32)}
    second = {"jwt_secret": secrets.token_urlsafe(48), "id_encryption_key": secrets.token_hex(32)}

    async with run_services("intake", **first) as system:
        old_token = system.token("county_officer", "410721")
        r = await system.clients["intake"].post("/v1/households", headers=old_token, json=household("R1", 1))
        assert r.status_code == 201, r.text
        before = (await system.clients["intake"].get("/v1/households/R1", headers=old_token)).json()
        assert await _sealed_key_ids(system) == {"1": 2 * len(before["members"])}

    rotated = {"jwt_secret": second["jwt_secret"], "jwt_key_id": "2", "jwt_old_secrets": {"1": first["jwt_secret"]},
               "id_encryption_key": second["id_encryption_key"], "id_encryption_key_id": "2",
               "id_encryption_old_keys": {"1": first["id_encryption_key"]}}
    async with run_services("intake", **rotated) as system:
        intake = system.clients["intake"]
        # An old token (key id 1) and an old record (key 1) are still read.
        assert (await intake.get("/v1/households/R1", headers=old_token)).json() == before
        new_token = system.token("county_officer", "410721")
        assert (await intake.post("/v1/households", headers=new_token, json=household("R2", 2))).status_code == 201
        assert await _sealed_key_ids(system) == {"1": 2 * len(before["members"]), "2": 2 * len(household("R2", 2)["members"])}

        admin = system.token("administrator", kind="system")
        assert (await intake.post("/v1/keys:reencrypt", headers=new_token, json={"limit": 1})).status_code == 403
        steps = []
        while True:
            r = await intake.post("/v1/keys:reencrypt", headers=admin, json={"limit": 1})
            assert r.status_code == 200, r.text
            steps.append(r.json())
            if not r.json()["remaining"]:
                break
        assert [s["resealed"] for s in steps] == [1] * len(before["members"])
        assert steps[-1] == {"key_id": "2", "resealed": 1, "remaining": 0}
        assert set(await _sealed_key_ids(system)) == {"2"}

    without_old = {**rotated, "jwt_old_secrets": {}, "id_encryption_old_keys": {}}
    async with run_services("intake", **without_old) as system:
        intake = system.clients["intake"]
        r = await intake.get("/v1/households/R1", headers=old_token)
        assert r.status_code == 401 and "key id '1'" in r.json()["detail"], r.text
        assert (await intake.get("/v1/households/R1", headers=system.token("county_officer", "410721"))).json() == before


def test_a_sealed_value_names_its_key_and_opens_only_with_it():
    old = Settings(environment="development", id_encryption_key=secrets.token_hex(32))
    new = Settings(environment="development", id_encryption_key=secrets.token_hex(32), id_encryption_key_id="k2",
                   id_encryption_old_keys={"1": old.id_encryption_key})
    sealed = IdentityVault(old).encrypt("张三")
    assert sealed.startswith(b"\x01\x011")
    assert IdentityVault(new).decrypt(sealed) == "张三"
    resealed = IdentityVault(new).reseal(sealed)
    assert resealed.startswith(b"\x01\x02k2") and IdentityVault(new).decrypt(resealed) == "张三"
    with pytest.raises(LookupError, match="key id '1'"):
        IdentityVault(Settings(environment="development", id_encryption_key=new.id_encryption_key,
                               id_encryption_key_id="k2")).decrypt(sealed)


def test_a_token_names_its_key_id():
    settings = Settings(environment="development", jwt_key_id="7")
    token = issue_token(settings, sub="a", role="county_officer", region="41")
    assert pyjwt.get_unverified_header(token)["kid"] == "7"
    with pytest.raises(Problem, match="key id '7'"):
        decode_token(Settings(environment="development", jwt_key_id="8"), token)
