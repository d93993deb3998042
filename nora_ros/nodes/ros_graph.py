"""The ROS graph as the graph guard asks it (:class:`nora_ros.safety.graph_guard.Graph`).

rclpy's graph queries read the middleware's local discovery cache (no network round trip):
counts are cheap and run on every control tick; the named lists only when the guard asks.
A service client's node is not in any per-service query, so the clients of a service are found
by asking every node in the graph for its clients (a full look, rare by design).
"""

from __future__ import annotations

from nora_ros.safety.graph_guard import PUBLISHERS, UNKNOWN_NAME, UNKNOWN_NAMESPACE, Endpoint, Rule


def _gid(raw) -> str:
    try:
        return bytes(raw).hex()
    except (TypeError, ValueError):
        return str(raw)


class RclpyGraph:
    def __init__(self, node):
        self.node = node

    def count(self, rule: Rule) -> int:
        if rule.kind == PUBLISHERS:
            return self.node.count_publishers(rule.name)
        return self.node.count_clients(rule.name)

    def endpoints(self, rule: Rule) -> list[Endpoint]:
        if rule.kind == PUBLISHERS:
            return [Endpoint(i.node_name, i.node_namespace, _gid(i.endpoint_gid))
                    for i in self.node.get_publishers_info_by_topic(rule.name)]
        found = []
        for name, namespace in self.node.get_node_names_and_namespaces():
            try:
                clients = self.node.get_client_names_and_types_by_node(name, namespace)
            except Exception:  # noqa: BLE001 - the node left between the two queries: nothing to name
                continue
            found += [Endpoint(name, namespace) for service, _ in clients if service == rule.name]
        # A node lists each service once however many clients it holds, so counts cannot be matched
        # to nodes; clients that no announced node claims show up only as a count without a name.
        if not found and self.count(rule) > 0:
            found.append(Endpoint(UNKNOWN_NAME, UNKNOWN_NAMESPACE, "client"))
        return found
