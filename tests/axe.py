"""Accessibility checks in the browser tests: axe-core run inside a Playwright page.

``assert_accessible(page)`` runs every axe rule on the page as it is now and fails on any
violation of ``serious`` or ``critical`` impact (the issue's bar), with a message that names
the rule, what it asks, and the offending elements. Moderate and minor findings are kept on
the returned result for a test that wants them.

axe is injected through Playwright's evaluate, which goes over the DevTools protocol and so
is not subject to the page's Content-Security-Policy: the page under test keeps its strict
policy (no inline script) and axe still runs. The vendored copy is in ``tests/vendor/
axe-core`` (version and licence recorded there); it is never served by the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

AXE_DIR = Path(__file__).parent / "vendor" / "axe-core"
AXE_FILE = AXE_DIR / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")


@lru_cache(maxsize=1)
def axe_source() -> str:
    return AXE_FILE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class AxeResult:
    url: str
    violations: list[dict]

    def at(self, *impacts: str) -> list[dict]:
        return [v for v in self.violations if v.get("impact") in impacts]


def run_axe(page, options: dict | None = None) -> AxeResult:
    """Run axe on ``page``'s whole document; returns its violations (every impact)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    found = page.evaluate(
        "async (options) => { const r = await axe.run(document, options);"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,"
        " nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary}))})); }",
        options or {"resultTypes": ["violations"]},
    )
    return AxeResult(page.url, found)


def describe(result: AxeResult, impacts=FAILING_IMPACTS, max_nodes: int = 5) -> str:
    """The violations of ``impacts`` in words a person can act on."""
    lines = [f"axe found accessibility problems on {result.url}:"]
    for v in result.at(*impacts):
        lines.append(f"- [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:max_nodes]:
            target = " ".join(str(t) for t in node["target"])
            summary = " ".join((node.get("summary") or "").split())
            lines.append(f"    at {target}: {node['html'][:160]}")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(v["nodes"]) > max_nodes:
            lines.append(f"    ... and {len(v['nodes']) - max_nodes} more")
    return "\n".join(lines)


def assert_accessible(page, options: dict | None = None) -> AxeResult:
    """Fail the test if axe finds a serious or critical violation on ``page`` now."""
    result = run_axe(page, options)
    if result.at(*FAILING_IMPACTS):
        raise AssertionError(describe(result))
    return result
