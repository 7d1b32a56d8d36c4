"""cdc-harness: a conformance and benchmark harness for Change Data Capture."""

from harness.capabilities import Capabilities
from harness.context import RunContext
from harness.events import ChangeEvent, Position
from harness.ledger import Ledger
from harness.verdict import ANOMALIES, Verdict

__all__ = ["ANOMALIES", "Capabilities", "ChangeEvent", "Ledger", "Position", "RunContext", "Verdict"]
