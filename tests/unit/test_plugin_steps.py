"""The ADD rollback and the DEL step collection shared by the veth plugins."""

from __future__ import annotations

import io

import pytest
from cnitool_plugins._lib.steps import DelSteps, Rollback

from cnitool.spec.errors import CNIError


def test_rollback_runs_steps_last_first_only_on_failure() -> None:
    done: list[str] = []
    with Rollback(io.StringIO()) as undo:
        undo.add(done.append, "never")
    assert done == []  # the ADD succeeded: nothing is undone

    def broken() -> None:
        raise OSError("device busy")

    err = io.StringIO()
    with pytest.raises(CNIError, match="the real failure"), Rollback(err) as undo:
        undo.add(done.append, "first")
        undo.add(broken)
        undo.add(done.append, "last")
        raise CNIError("the real failure")
    assert done == ["last", "first"]  # a failing step does not stop the others
    assert err.getvalue() == "rollback step broken failed: device busy\n"


def test_del_steps_keep_going_and_report_every_error() -> None:
    steps = DelSteps()
    assert steps.run(lambda: ["10.0.0.2/24"]) == ["10.0.0.2/24"]
    steps.finish()  # nothing failed: no error

    one = DelSteps()
    assert one.run(lambda: (_ for _ in ()).throw(CNIError("ipam gone", code=11))) is None
    with pytest.raises(CNIError) as single:
        one.finish()
    assert single.value.msg == "ipam gone" and single.value.code == 11

    several = DelSteps()
    several.run(lambda: 1 / 0)
    ran: list[int] = []
    several.run(ran.append, 1)
    several.run(lambda: (_ for _ in ()).throw(CNIError("netns busy", code=5)))
    assert ran == [1]
    with pytest.raises(CNIError) as joined:
        several.finish()
    assert joined.value.msg == "2 errors during DEL: division by zero; netns busy"
    assert joined.value.code == 5  # the first CNI error's code


def test_error_list_flattens_nested_lists_and_keeps_the_first_code() -> None:
    from cnitool.spec.errors import ErrorList, MultipleErrors

    inner = ErrorList()
    inner.add(CNIError("lease busy", code=11))
    inner.add(OSError("disk full"))
    outer = ErrorList()
    assert outer.run(lambda: 1) == 1
    outer.add(ValueError("bad"))
    outer.run(inner.raise_if_any, "GC")  # a step that collected errors of its own
    assert [str(e) for e in outer] == ["bad", "lease busy", "disk full"]
    assert outer.code() == 11 and len(outer) == 3
    with pytest.raises(MultipleErrors) as err:
        outer.raise_if_any("teardown")
    assert err.value.msg == "3 errors during teardown: bad; lease busy; disk full"
    assert err.value.code == 11
    only = ErrorList()
    only.add(CNIError("one", code=7))
    with pytest.raises(CNIError) as single:
        only.raise_if_any("teardown")
    assert single.value.msg == "one" and not isinstance(single.value, MultipleErrors)
    ErrorList().raise_if_any("nothing")  # nothing failed: returns
