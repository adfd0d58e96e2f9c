"""The fast subset of the fault suite (`make faults` runs every trial)."""

import pytest

from faults.core import Fault, NotSurvived
from faults.registry import all_faults
from faults.run import render, run_fault

FAULTS = all_faults()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_survived(fault: Fault) -> None:
    result = run_fault(fault, fast=True, progress=False)
    assert result.injected > 0, f"{fault.name} has no fast trials"
    assert result.survived == result.injected, "\n".join(result.failures)


def test_a_lost_trial_is_reported_not_survived() -> None:
    def inject(param: object, _workdir) -> str:
        if param == 2:
            raise NotSurvived("episode 2 lost")
        if param == 3:
            raise KeyError("boom")
        return "fine"

    fault = Fault("demo", "test", "nothing", "always", lambda fast: [1, 2, 3], inject)
    result = run_fault(fault, fast=True, progress=False)
    assert (result.injected, result.survived) == (3, 1)
    assert "episode 2 lost" in result.failures[0] and "crashed: KeyError" in result.failures[1]
    report = render([result], fast=True)
    assert "| `demo` | test |" in report and "| 3 | 1 |" in report
