"""Who may call notifier's routes: the principal aliases its routes take (`principal: Registrar`).
Any member of staff reading their own inbox is runtime.auth.Staff."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from runtime.auth import Principal, require

# Who puts staff in the directory (officers and administrators, or a system doing it for them).
Registrar = Annotated[Principal, Depends(require("county_officer", "township_officer", "administrator",
                                                 kinds=("staff", "system")))]

# Who reads the delivery ledger and sends dead deliveries again.
Operator = Annotated[Principal, Depends(require("administrator", "operator", kinds=("staff", "system")))]
# Who subscribes a system to events by webhook: a department system for its warnings, an administrator.
Subscriber = Annotated[Principal, Depends(require("department_system", "administrator", kinds=("staff", "system")))]
