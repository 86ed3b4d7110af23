"""A service process decodes the events of every service it consumes, whatever its own code happens to
import: the app factory loads the whole catalogue. (assistance, run as a process, once sent notifier's
StaffRegistered to the dead letters as an unknown event type.)"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_fresh_process_with_only_the_app_factory_knows_every_event_type():
    probe = ("from runtime.app import create_app\n"
             "from contracts.base import payload_class\n"
             "missing = [t for t in ('StaffRegistered', 'SubjectIdentified', 'ExitApproved', 'RiskCluesRaised', "
             "'PlanOpened', 'CheckpointSigned') if payload_class(t) is None]\n"
             "print(missing)\n")
    answer = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]", answer.stdout
