"""Drive every operation of the server's /openapi.json with schemathesis, in process
(through the ASGI app, no socket), positive and negative cases, and count what came
back. A 5xx is a failure; so is an exception out of the app."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@dataclass
class OperationReport:
    operation: str
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "calls": self.calls,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failures": self.failures[:5],
        }


def without_lifespan(app: Any) -> Any:
    """The app for a second client: schemathesis runs the ASGI lifespan and shuts it down
    at exit, which would close the store under the server that owns it."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return asgi


def fuzz_operations(
    app: Any,
    headers: dict[str, str],
    examples: int,
    slow_examples: int,
    slow: tuple[str, ...] = ("/api/ask", "/v1/chat/completions"),
    derandomize: bool = True,
) -> list[OperationReport]:
    """Every operation, `examples` cases each (`slow_examples` for the generating ones)."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    reports = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
        n = slow_examples if operation.path in slow else examples
        report = OperationReport(f"{operation.method.upper()} {operation.path}")
        _fuzz_one(report, strategy, n, headers, derandomize)
        reports.append(report)
    return reports


def _fuzz_one(
    report: OperationReport, strategy: Any, n: int, headers: dict[str, str], derandomize: bool
) -> None:
    @settings(
        max_examples=n,
        derandomize=derandomize,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(case: Any) -> None:
        report.calls += 1
        try:
            response = case.call(headers=headers, timeout=180)
        except Exception as exc:  # noqa: BLE001 - an exception out of the app is a finding
            report.failures.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            curl = case.as_curl_command()
            report.failures.append(f"{response.status_code} for {curl}: {response.text[:200]}")

    run()
