"""intake: every sealed value names its encryption key id (values sealed before ids: key id "1")

Revision ID: intake_0006
Revises: intake_0005
"""
from alembic import op

revision = "intake_0006"
down_revision = "intake_0005"
branch_labels = None
depends_on = None

# IdentityVault.header_of("1"): version 1, a key id of one byte, "1".
_HEADER = "'\\x010131'::bytea"


def upgrade() -> None:
    op.execute(f"UPDATE members SET id_cipher = {_HEADER} || id_cipher, name_cipher = {_HEADER} || name_cipher")
    op.execute(f"UPDATE declarations SET phone_cipher = {_HEADER} || phone_cipher WHERE phone_cipher IS NOT NULL")

