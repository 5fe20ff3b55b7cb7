"""Slow drafts cannot stall the service (issue #16 item 4).

At most ``max_draft_checks`` ValidateAudience calls are checked at once; beyond that a call is
refused at once with RESOURCE_EXHAUSTED, and the worker threads left over keep answering every
other call (here an uncached CompileAudience) while the slow drafts are still being checked.
The slowness is injected (a check that waits for an event), so nothing depends on timing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from audience.service import servicer as servicer_module
from audience.service.protos import audience_service_pb2 as rpc
from tests.service.helpers import EVERYONE_BLOCK, serving


def test_slow_drafts_are_capped_and_other_calls_complete(project_root: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    release, inside = threading.Event(), threading.Semaphore(0)
    real_check = servicer_module.check_definition

    def slow_check(*args: object, **kwargs: object) -> object:
        inside.release()
        release.wait(60)
        return real_check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(servicer_module, "check_definition", slow_check)
    with serving(project_root, max_workers=4) as srv:
        cap = srv.planner.servicer.max_draft_checks
        assert cap == 2
        slow = [srv.stub.ValidateAudience.future(rpc.ValidateAudienceRequest(definition=EVERYONE_BLOCK))
                for _ in range(cap)]
        for _ in range(cap):
            assert inside.acquire(timeout=30)
        try:
            with pytest.raises(grpc.RpcError) as caught:
                srv.stub.ValidateAudience(rpc.ValidateAudienceRequest(definition=EVERYONE_BLOCK),
                                          timeout=30)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 2 at once" in caught.value.details()
            compiled = srv.stub.CompileAudience(rpc.CompileAudienceRequest(
                name="audiences/everyone", dialect="postgres"), timeout=30)
            assert compiled.sql.startswith("SELECT")
            assert not any(f.done() for f in slow)  # the slow drafts were still being checked
        finally:
            release.set()
        for f in slow:
            assert f.result(timeout=30).audiences == ["audiences/everyone"]
        # once they are done, drafts are accepted again
        again = srv.stub.ValidateAudience(rpc.ValidateAudienceRequest(definition=EVERYONE_BLOCK))
        assert again.audiences == ["audiences/everyone"]
