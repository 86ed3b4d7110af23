"""intake's inner shape (issue 15): decisions in a package of pure modules, and every refusal those
decisions raise answered with its status from the one mapping of the service definition."""
import ast
import sys
from pathlib import Path

from contracts.codes import Refusal
from services.intake import domain
from services.intake.app import SERVICE

DOMAIN = Path(__file__).resolve().parents[3] / "services" / "intake" / "domain"


def test_the_domain_is_a_package_of_modules_that_import_no_io():
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) > 3, modules  # one module per subject, not one file
    io_imports = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "contracts" and not name.startswith("services.intake.domain"):
                    io_imports.append(f"{path.name}: {name}")
    assert not io_imports, io_imports


def test_every_refusal_of_the_domain_has_its_status_in_the_service_definition():
    refusals = {value for value in vars(domain).values() if isinstance(value, type) and issubclass(value, Refusal)}
    assert {domain.HouseholdNotFound, domain.NotOwnHousehold, domain.VisitRefused, domain.InvalidIdNumber,
            domain.UnknownIndicator} <= refusals
    assert refusals <= set(SERVICE.refusal_statuses), refusals - set(SERVICE.refusal_statuses)
    assert SERVICE.refusal_statuses[domain.HouseholdNotFound] == 404
    assert SERVICE.refusal_statuses[domain.VisitRefused] == 403
