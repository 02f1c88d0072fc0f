"""The graph of work: every unit of GPU work a render does is a node, with edges to the nodes it waits for.

Nodes (`Node.kind`):
- `keyframe`: the generated start picture of a chain's first shot (`Job.keyframe`), made by the edit model;
- `take`: one take of one shot, rendered by the video model with that take's seed (`Job.for_take`);
- `bridge`: a generated shot between two shots (`Job.is_bridge`), rendered by the video model after both.

Edges (`Edge.needs` says what a node takes from its parent):
- `picture`: every take of a chain's first shot waits for that shot's keyframe node (the start image);
- `tail`: every take of a continued shot (`transition: continue`) waits for the *picked* take of the shot it
  continues: it is rendered from that take's last `overlap_frames` frames;
- `head`: a parent's first frame(s), for a node that must end where its parent begins.

A node may have several parents; executors run a node once every parent is done (`Graph.ready`), wherever
they like (this process, a Ray worker, every torchrun rank), and nothing renders outside the graph.

Two parents, the shape of a bridge (DESIGN §9: a generated shot between shot A and shot B that continues A's
last frames and ends on B's first frame; `Job.after` is A, `Job.before` is B) is written as

    Node(id="two/b~bridge#take1", kind="bridge", job=<the bridge's Job>, picked=True,
         parents=(Edge("one/a#take1", TAIL), Edge("two/b#take1", HEAD)))

with each parent the *picked* take (`take_id(job.id, job.take)`): the node is ready when both are done; the
job store resolves each edge by its `needs` (A's lossless tail, B's first frames) before the node renders.
Any node kind may have any number of parents: a new kind of two-parent work needs a `kind`, its edges, and
the store's way of rendering it; every executor schedules it unchanged.
`Graph.nodes` is in an order every executor may run one by one (parents before children); `strands()` groups
nodes a worker should run in a row because each continues the one before (a chain of picked takes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storyforge.plan.model import Job, Plan

KEYFRAME, TAKE, BRIDGE = "keyframe", "take", "bridge"
PICTURE, TAIL, HEAD = "picture", "tail", "head"


def take_id(job_id: str, take: int) -> str:
    """A take node's id: `scene/shot#take<N>`."""
    return f"{job_id}#take{take}"


def keyframe_id(job_id: str) -> str:
    """A keyframe node's id: `scene/shot#keyframe`."""
    return f"{job_id}#keyframe"


@dataclass(frozen=True)
class Edge:
    """A node waits for `parent` and takes `needs` from it (picture | tail | head)."""

    parent: str
    needs: str


@dataclass(frozen=True)
class Node:
    """One unit of GPU work: a keyframe, one take of one shot, or a bridge."""

    id: str
    kind: str  # keyframe | take | bridge (two parents)
    job: Job  # a take: the job as that take renders it (its seed and key); a keyframe: the shot's job
    parents: tuple[Edge, ...] = ()
    picked: bool = True  # a take: whether it is the shot's picked take (what the cut and continuations use)
    wanted: bool = True  # asked for; False: upstream of what was asked, brought in only because that continues it


@dataclass(frozen=True)
class Graph:
    """The nodes of a render in an order that runs parents first: keyframes, then every take in film order."""

    nodes: tuple[Node, ...]
    _index: dict[str, Node] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update((node.id, node) for node in self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def node(self, node_id: str) -> Node:
        return self._index[node_id]

    def of_kind(self, kind: str) -> list[Node]:
        return [node for node in self.nodes if node.kind == kind]

    def ready(self, done: Iterable[str]) -> list[Node]:
        """Nodes not done whose parents all are, in graph order."""
        finished = set(done)
        return [node for node in self.nodes if node.id not in finished
                and all(edge.parent in finished or edge.parent not in self._index for edge in node.parents)]

    def strands(self) -> list[list[Node]]:
        """The nodes cut into runs a worker renders in a row: a picked take joins the strand of the picked take it
        continues (its only parent, a tail); every other node starts a strand. Graph order inside each."""
        strands: list[list[Node]] = []
        ends: dict[str, list[Node]] = {}  # a strand by the id of its last node
        for node in self.nodes:
            only = node.parents[0] if len(node.parents) == 1 else None
            joined = ends.pop(only.parent, None) if (only is not None and only.needs == TAIL and node.picked
                                                     and node.kind == TAKE) else None
            if joined is None:
                joined = []
                strands.append(joined)
            joined.append(node)
            ends[node.id] = joined
        return strands

    def external_parents(self, strand: Sequence[Node]) -> set[str]:
        """The parents of a strand's nodes outside it (what must be done before it starts)."""
        inside = {node.id for node in strand}
        return {edge.parent for node in strand for edge in node.parents
                if edge.parent not in inside and edge.parent in self._index}


def graph_of(plan: Plan, jobs: Sequence[Job], *, keyframes: Iterable[str] = (), takes: bool = True) -> Graph:
    """The graph that renders `jobs` (what was asked for; every take of each), the picked take of each job they
    wait for that is not asked for (`wanted=False`), and a keyframe node for each job id in `keyframes` (the
    start pictures still to make). Bridges come last: each waits for the end of one chain and the first frame
    of another. `takes=False`: the keyframe nodes alone."""
    wanted = {job.id for job in jobs}
    make = set(keyframes)
    included: set[str] = set()
    stack = list(jobs)
    while stack:  # what the jobs asked for wait for, transitively: the shots they continue or lead into
        job = stack.pop()
        if job.id not in included:
            included.add(job.id)
            stack.extend(plan.job(parent) for parent in (job.after, job.before) if parent is not None)
    nodes = [Node(keyframe_id(job.id), KEYFRAME, job, wanted=job.id in wanted) for job in plan.jobs
             if job.id in make and job.keyframe is not None and (job.id in included or not takes)]
    if not takes:
        return Graph(tuple(nodes))
    bridges: list[Node] = []
    for job in plan.jobs:
        if job.id not in included:
            continue
        parents: tuple[Edge, ...] = ()
        if job.after is not None:
            parents += (Edge(take_id(job.after, plan.job(job.after).take), TAIL),)
        elif job.id in make and job.keyframe is not None:
            parents += (Edge(keyframe_id(job.id), PICTURE),)
        if job.before is not None:
            parents += (Edge(take_id(job.before, plan.job(job.before).take), HEAD),)
        kind = BRIDGE if job.is_bridge else TAKE
        for take in job.all_takes if job.id in wanted else (job,):
            node = Node(take_id(job.id, take.take), kind, take, parents, picked=take.take == job.take,
                        wanted=job.id in wanted)
            (bridges if job.is_bridge else nodes).append(node)
    return Graph(tuple(nodes + bridges))
