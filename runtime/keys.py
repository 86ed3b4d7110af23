"""Keys: no development key outside development, key ids for rotation, and the keys a machine running
`fangpin up` makes for itself on first start.

A development key is one of the constants in runtime.settings: anyone can read them, so with the
default hash key an ID hash is reversed by brute force (region + birth date + 3 digits) and with the
default encryption key every record decrypts; with the default audit signing key anyone signs
checkpoints over a history rewritten (runtime.checkpoints). A service whose `environment` is not `development`
refuses to start while any key is one of them (runtime.startup: exit code 78, EX_CONFIG).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from runtime.settings import DEV_AUDIT_SIGNING_KEY, DEV_ID_ENCRYPTION_KEY, DEV_ID_HASH_KEY, DEV_SECRET, Settings

MIN_JWT_SECRET_BYTES = 32
KEYS_FILE_NAME = "keys.env"
KEYS_ADDED_LATER = ("FANGPIN_AUDIT_SIGNING_KEY",)  # made into a keys.env of an older system at its next start
_DEVELOPMENT = {DEV_SECRET, DEV_ID_HASH_KEY, DEV_ID_ENCRYPTION_KEY, DEV_AUDIT_SIGNING_KEY}
# What the start-up refusal (runtime.startup) adds when a key is named.
KEY_ADVICE = ("Set each key named to a key of your own (`fangpin keys new` prints a fresh set); on a test machine "
              "FANGPIN_ENVIRONMENT=development allows the development keys.")


def key_problems(settings: Settings) -> list[str]:
    """What is wrong with the keys for this environment, one line per setting (empty: all good)."""
    problems = []
    hex_keys = {"FANGPIN_ID_HASH_KEY": settings.id_hash_key, "FANGPIN_ID_ENCRYPTION_KEY": settings.id_encryption_key,
                **{f"FANGPIN_ID_ENCRYPTION_OLD_KEYS[{kid}]": key for kid, key in settings.id_encryption_old_keys.items()},
                "FANGPIN_AUDIT_SIGNING_KEY": settings.audit_signing_key}
    for name, key in hex_keys.items():
        if not _is_key_hex(key):
            problems.append(f"{name} is not 64 hex digits (32 bytes)")
    if settings.id_encryption_key_id in settings.id_encryption_old_keys:
        problems.append(f"FANGPIN_ID_ENCRYPTION_KEY_ID {settings.id_encryption_key_id!r} is also an old key's id")
    if settings.jwt_key_id in settings.jwt_old_secrets:
        problems.append(f"FANGPIN_JWT_KEY_ID {settings.jwt_key_id!r} is also an old secret's id")
    if settings.environment == "development":
        return problems
    secrets_ = {"FANGPIN_JWT_SECRET": settings.jwt_secret,
                **{f"FANGPIN_JWT_OLD_SECRETS[{kid}]": key for kid, key in settings.jwt_old_secrets.items()}}
    for name, key in {**secrets_, **hex_keys}.items():
        if key in _DEVELOPMENT:
            problems.append(f"{name} is the built-in development key")
    for name, key in secrets_.items():
        if key not in _DEVELOPMENT and len(key.encode()) < MIN_JWT_SECRET_BYTES:
            problems.append(f"{name} is shorter than {MIN_JWT_SECRET_BYTES} bytes")
    return problems


def new_keys() -> dict[str, str]:
    """A fresh set of keys as FANGPIN_ environment variables."""
    return {"FANGPIN_JWT_SECRET": secrets.token_urlsafe(48), "FANGPIN_ID_HASH_KEY": secrets.token_hex(32),
            "FANGPIN_ID_ENCRYPTION_KEY": secrets.token_hex(32), "FANGPIN_AUDIT_SIGNING_KEY": secrets.token_hex(32)}


def read_keys_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def local_keys(data_dir: Path, create: bool) -> dict[str, str]:
    """The keys of the system `fangpin up` runs from `data_dir` (its keys.env, readable by the owner
    only), made on first start when `create`; {} when there is none. Variables already set in the
    environment win over the file (a deployment may keep its keys elsewhere)."""
    path = data_dir / KEYS_FILE_NAME
    if not path.exists():
        if not create:
            return {}
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write("# Keys of this Fangpin system, made on its first start. Keep them: without\n"
                      "# FANGPIN_ID_ENCRYPTION_KEY the ID numbers and names stored cannot be read.\n")
            out.writelines(f"{name}={value}\n" for name, value in new_keys().items())
    elif create and (missing := [name for name in KEYS_ADDED_LATER if name not in read_keys_file(path)]):
        # A system made before these keys existed: nothing was sealed or signed with them yet.
        fresh = new_keys()
        with path.open("a") as out:
            out.writelines(f"{name}={fresh[name]}\n" for name in missing)
    return {name: value for name, value in read_keys_file(path).items() if name not in os.environ}


def _is_key_hex(value: str) -> bool:
    try:
        return len(bytes.fromhex(value)) == 32
    except ValueError:
        return False
