"""The safety node acts only on what expected nodes send: the graph guard (no ROS here).

The ROS graph says who publishes on a topic (node name and namespace per endpoint) and which
nodes hold a client of a service. The guard is given the names the safety node acts on (``cmd``,
``trial/status``, the arm's command topics, the ``safety/enable`` and ``safety/reset``
services) with the nodes allowed there (from :mod:`nora_ros.interface.access`), and latches a
fault naming the first node that is not: the node shell then holds the arm (e-stop) until an
operator reset, which the guard refuses while that node is still in the graph.

Cost per control tick: one *count* per watched name (``count_publishers`` / ``count_clients``:
about 5 us each on Jazzy with Cyclone); the named endpoint lists (``get_publishers_info_by_topic``,
about 26 us, or a scan of every node's clients) are asked for only when a count changed since
the last full look, and once every ``full_check_period`` seconds anyway (a publisher that
replaced another between two ticks keeps the count).

What it cannot do, said plainly:
- Names in the graph are what each process announces; nothing authenticates them. A process
  that calls itself ``/nora/policy_node`` while the real one is down passes. A second
  publisher under the same name is caught (only one is expected). Authentication is SROS2's job.
- rclpy does not tell a service callback who called (the request's writer GUID stays inside
  rclpy), so for services the guard checks which nodes *hold a client* of the service when it is
  called and at each tick; a client that calls and disappears between two ticks and whose node
  announcement arrives after the call is not seen. Clients are counted per service but named
  per node (a node lists a service once however many clients it holds), so an unannounced
  client is seen only while no announced node holds one.
- An endpoint whose node is not yet announced (its ROS discovery info lags the DDS one: more
  than 0.5 s while a secured stack started on Jazzy; or a plain DDS program) is "unidentified":
  messages are not acted on while it is there, and it latches a fault once it stays
  unidentified for ``identify_timeout`` seconds.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nora_ros.errors import ConfigurationError

PUBLISHERS, CLIENTS = "publishers", "clients"
UNKNOWN_NAME, UNKNOWN_NAMESPACE = "_NODE_NAME_UNKNOWN_", "_NODE_NAMESPACE_UNKNOWN_"
"""What rmw reports for an endpoint whose participant has not announced its nodes."""


@dataclass(frozen=True)
class Endpoint:
    """One publisher (or the node holding a client) as the graph names it."""

    node: str
    namespace: str
    gid: str = ""

    @property
    def identified(self) -> bool:
        return self.node != UNKNOWN_NAME and self.namespace != UNKNOWN_NAMESPACE

    @property
    def fqn(self) -> str:
        ns = self.namespace.rstrip("/")
        return f"{ns}/{self.node}"

    def describe(self) -> str:
        if not self.identified:
            return f"an unidentified endpoint (no ROS node announced{', gid ' + self.gid if self.gid else ''})"
        return f"node {self.fqn}"


@dataclass(frozen=True)
class Rule:
    """On ``name`` (absolute), every ``kind`` endpoint must belong to an ``allowed`` node: a fully
    qualified node name (at most one endpoint each: a second is an impostor or a second
    instance) or an fnmatch pattern (any number)."""

    name: str
    kind: str
    allowed: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in (PUBLISHERS, CLIENTS):
            raise ConfigurationError(f"rule kind must be {PUBLISHERS} or {CLIENTS}, got {self.kind!r}")
        if not self.name.startswith("/"):
            raise ConfigurationError(f"rule name must be absolute, got {self.name!r}")

    def intruders(self, endpoints: Sequence[Endpoint]) -> list[tuple[Endpoint, str]]:
        """Endpoints not allowed here, each with why."""
        out: list[tuple[Endpoint, str]] = []
        seen: set[str] = set()
        for e in endpoints:
            if not e.identified:
                out.append((e, "unidentified"))
                continue
            exact = e.fqn in self.allowed
            if exact and e.fqn in seen and self.kind == PUBLISHERS:
                out.append((e, f"a second publisher named {e.fqn} (only one is expected)"))
            elif not exact and not any(_is_pattern(a) and fnmatch.fnmatchcase(e.fqn, a) for a in self.allowed):
                out.append((e, "not an expected " + ("publisher" if self.kind == PUBLISHERS else "caller")))
            seen.add(e.fqn)
        return out


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


class Graph(Protocol):
    """What the guard asks the ROS graph (the node shell adapts rclpy's graph queries)."""

    def count(self, rule: Rule) -> int:
        """How many endpoints of ``rule.kind`` on ``rule.name`` (cheap)."""

    def endpoints(self, rule: Rule) -> Sequence[Endpoint]:
        """Those endpoints, named (dearer)."""


@dataclass(frozen=True)
class Finding:
    rule: Rule
    endpoint: Endpoint
    why: str

    def describe(self) -> str:
        what = "publisher on" if self.rule.kind == PUBLISHERS else "client of"
        return f"foreign {what} {self.rule.name}: {self.endpoint.describe()} ({self.why})"


@dataclass(frozen=True)
class GuardCheck:
    """One look at the graph. ``clean``: nothing unexpected on any watched name (the shell may act
    on what arrives); ``fault``: the latched reason ('' when none); ``new_fault``: latched by this
    look; ``full``: the named lists were read this time."""

    clean: bool
    fault: str
    new_fault: bool
    full: bool
    findings: tuple[Finding, ...] = ()


@dataclass
class GraphGuard:
    """Latches the first unexpected endpoint on a watched name. Not thread-safe: the node calls it
    from its executor thread."""

    rules: tuple[Rule, ...]
    full_check_period: float = 1.0
    identify_timeout: float = 5.0
    fault: str = ""
    _counts: dict[Rule, int] = field(default_factory=dict)
    _last_full: float = float("-inf")
    _unidentified_since: dict[tuple[Rule, str], float] = field(default_factory=dict)
    _findings: tuple[Finding, ...] = ()
    checks: int = 0
    full_checks: int = 0

    def __post_init__(self) -> None:
        if not self.full_check_period > 0 or not self.identify_timeout >= 0:
            raise ConfigurationError("full_check_period must be > 0 and identify_timeout >= 0")

    def check(self, graph: Graph, now: float, *, force_full: bool = False) -> GuardCheck:
        """Count each watched name; read the named lists when a count changed, when forced, or
        when ``full_check_period`` has passed; latch the first unexpected endpoint."""
        self.checks += 1
        counts = {r: graph.count(r) for r in self.rules}
        full = force_full or counts != self._counts or now - self._last_full >= self.full_check_period
        if full:
            self._counts = counts
            self._last_full = now
            self.full_checks += 1
            self._findings = tuple(self._look(graph, now))
        new_fault = False
        if not self.fault:
            for f in self._findings:
                if f.why != "unidentified" or self._unidentified_for(f, now) >= self.identify_timeout:
                    self.fault = f.describe()
                    if f.why == "unidentified":
                        self.fault += f" for {self.identify_timeout:g} s"
                    new_fault = True
                    break
        return GuardCheck(clean=not self._findings and not self.fault, fault=self.fault, new_fault=new_fault,
                          full=full, findings=self._findings)

    def _look(self, graph: Graph, now: float) -> list[Finding]:
        findings = []
        still: set[tuple[Rule, str]] = set()
        for rule in self.rules:
            for endpoint, why in rule.intruders(graph.endpoints(rule)):
                f = Finding(rule, endpoint, why)
                if why == "unidentified":
                    key = (rule, endpoint.gid)
                    still.add(key)
                    self._unidentified_since.setdefault(key, now)
                findings.append(f)
        self._unidentified_since = {k: v for k, v in self._unidentified_since.items() if k in still}
        return findings

    def _unidentified_for(self, f: Finding, now: float) -> float:
        return now - self._unidentified_since.get((f.rule, f.endpoint.gid), now)

    def reset(self, graph: Graph, now: float) -> tuple[bool, str]:
        """The operator's reset: refused (with the reason) while anything unexpected is still in
        the graph; else the fault is cleared."""
        findings = self._look(graph, now)
        self._counts = {r: graph.count(r) for r in self.rules}
        self._last_full = now
        self._findings = tuple(findings)
        if findings:
            more = f"; and {len(findings) - 3} more" if len(findings) > 3 else ""
            return False, "still in the graph: " + "; ".join(f.describe() for f in findings[:3]) + more
        self.fault = ""
        return True, ""

    def report(self) -> Mapping[str, object]:
        """Values for /diagnostics."""
        return {"graph_fault": self.fault or "-", "graph_watched": len(self.rules),
                "graph_checks": self.checks, "graph_full_checks": self.full_checks}


def rules_for(namespace: str, node_fqn: str, *, robot_name: str, arm_topics: Sequence[str],
              operator_nodes: Sequence[str]) -> tuple[Rule, ...]:
    """The safety node's rules, from the access table: each topic it acts on (``acts_on``) with
    the roles that may publish it as node names under ``namespace``; each of ``arm_topics`` (the
    absolute command topics of the arm backend in use: the xs driver's
    ``/<robot_name>/commands/*``, the sim's joint and gripper topics) with the safety node itself
    (``node_fqn``) as the only publisher; each guarded service with ``operator_nodes`` (fully
    qualified names or fnmatch patterns) and the nodes of the table's other callers (the console
    node) as the allowed callers."""
    from nora_ros.interface import access

    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    rules: list[Rule] = []
    for a in access.TOPICS:
        if a.acts_on and a.publishers != ("safety",):  # the arm's topics: from arm_topics below
            allowed = tuple(f"{ns}/{access.role(r).node}" for r in a.publishers)
            rules.append(Rule(access.absolute(a.topic.name, namespace, robot_name), PUBLISHERS, allowed))
    rules += [Rule(name, PUBLISHERS, (node_fqn,)) for name in dict.fromkeys(arm_topics)]
    for s in access.SERVICES:
        if s.guarded:
            nodes = tuple(f"{ns}/{access.role(r).node}" for r in s.clients if access.role(r).node)
            rules.append(Rule(access.absolute(s.name, namespace, robot_name), CLIENTS, tuple(operator_nodes) + nodes))
    return tuple(rules)
