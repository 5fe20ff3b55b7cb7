"""gRPC ingest destinations: the ``ingest.v1`` client, and the sandbox receiver.

- :mod:`.client` — :class:`IngestClient`, used by runs to export to a gRPC destination.
- :mod:`.sandbox` — the reference receiver behind ``audience dsp-sandbox``.
- :mod:`.model` — plain types (:class:`Mode`, :class:`UploadInfo`, :class:`BatchAck`).
- :mod:`.status` — the ``grpc-status-details-bin`` trailer (rich error status), for every side.

The protocol itself is ``proto/ingest/v1/ingest.proto``. Importing :mod:`.client` or
:mod:`.sandbox` loads its generated Python code (``proto_gen``); importing this package alone
does not, so it stays cheap.
"""

from __future__ import annotations

from exporters.grpc_ingest.model import BatchAck, Mode, UploadInfo, UploadState

__all__ = ["BatchAck", "Mode", "UploadInfo", "UploadState"]
