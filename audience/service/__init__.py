"""The gRPC planner service (``audience serve``, package ``audience.v1``).

Modules, one job each:

- :mod:`~audience.service.protos`: the generated ``audience.v1`` modules (generated on import);
- :mod:`~audience.service.names`: resource names (``audiences/{a}``, ``audiences/{a}/runs/{r}``);
- :mod:`~audience.service.pagination`: page sizes and opaque page tokens;
- :mod:`~audience.service.errors`: status codes with ``google.rpc`` details, exception mapping;
- :mod:`~audience.service.project_cache`: the loaded project, reloaded when its files change;
- :mod:`~audience.service.results`: a TTL cache that also merges identical calls in flight;
- :mod:`~audience.service.drafts`: checking and overlaying draft definitions;
- :mod:`~audience.service.counts`: rounding counts of people, overlap queries;
- :mod:`~audience.service.convert`: domain objects to protobuf messages;
- :mod:`~audience.service.servicer`: the ``AudienceService`` RPCs;
- :mod:`~audience.service.call_log`: one structured log line per call;
- :mod:`~audience.service.auth`: the bearer-token check;
- :mod:`~audience.service.options`: the options of ``audience serve``;
- :mod:`~audience.service.server`: building, starting and stopping the ``grpc.aio`` server
  (CLI entry).
"""
