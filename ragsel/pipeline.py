"""The typed stage DAG: build, check, run.

Types are checked when a connection is made; required inputs, cycles and dangling
connections when the graph is compiled (first run, or :meth:`Pipeline.validate`). The run loop
works on a precompiled plan and does not re-validate payloads, so orchestration costs
microseconds.

Unconnected inputs named ``query`` that accept a :class:`Query` receive the pipeline's query.
Other inputs may be declared *pipeline inputs* (``Pipeline(inputs=["cut.candidates"])``) and
supplied per run: ``run(query, inputs={"cut.candidates": candidates})``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from ragsel._graph import (
    connection_sockets,
    socket_pair,
    split_ref,
    topological_order,
    wiring_problems,
)
from ragsel._mermaid import to_mermaid
from ragsel._plan import Plan, Step, compile_plan, kwargs, record, seed
from ragsel.errors import CycleError, StageError, WiringError
from ragsel.stage import InputSpec, Stage, sockets_compatible
from ragsel.trace import RunResult, StageTrace, Trace
from ragsel.typecheck import compatible
from ragsel.types import Candidates, Query


@dataclass(frozen=True, slots=True)
class Connection:
    src: str
    src_out: str
    dst: str
    dst_in: str

    def __str__(self) -> str:
        return f"{self.src}.{self.src_out} -> {self.dst}.{self.dst_in}"


class Pipeline:
    """A DAG of named stages.

    >>> p = Pipeline()
    >>> p.add("bm25", BM25Retriever(index="idx"))          # doctest: +SKIP
    >>> p.add("cut", ElbowCutoff())                         # doctest: +SKIP
    >>> p.connect("bm25.candidates", "cut.candidates")     # doctest: +SKIP
    >>> result = p.run("which clauses restrict assignment?")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        name: str = "pipeline",
        description: str = "",
        output: str | None = None,
        inputs: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.description = description
        self.output = output
        #: "stage.input" refs whose values are passed per run (``run(q, inputs={ref: v})``)
        self.inputs: list[str] = list(inputs)
        self.stages: dict[str, Stage] = {}
        self.connections: list[Connection] = []
        self._plan: Plan | None = None
        self._warm = False

    # --- building ------------------------------------------------------------------------
    @classmethod
    def linear(cls, stages: Sequence[Stage | tuple[str, Stage]], **kw: Any) -> Pipeline:
        """Chain stages in order. Each input is fed by the nearest earlier stage with a
        compatible output (so a selector can take rationales from two steps back); ``query``
        inputs with no earlier Query output get the pipeline query."""
        p = cls(**kw)
        for item in stages:
            name, stage = item if isinstance(item, tuple) else (item.name, item)
            p.add(name, stage)
        p._connect_linear(list(p.stages))
        return p

    def add(self, name: str, stage: Stage) -> Pipeline:
        if not isinstance(stage, Stage):
            raise WiringError(f"'{name}' is a {type(stage).__name__}, not a ragsel Stage")
        if not name or not name.replace("_", "a").replace("-", "a").isalnum():
            raise WiringError(f"invalid stage name {name!r}: use letters, digits, '_' or '-'")
        if name in self.stages:
            raise WiringError(f"duplicate stage name '{name}': every stage needs its own name")
        if any(s is stage for s in self.stages.values()):
            raise WiringError(
                f"this {type(stage).__name__} instance is already in the pipeline; "
                f"create a second instance for '{name}'"
            )
        stage.name = name
        self.stages[name] = stage
        self._plan = None
        return self

    def connect(self, src: str, dst: str) -> Pipeline:
        """Connect ``"a.output"`` to ``"b.input"``; socket names may be omitted when only one
        pair of sockets fits."""
        s_name, s_out = split_ref(src)
        d_name, d_in = split_ref(dst)
        outs, ins = connection_sockets(self, src, dst, (s_name, s_out), (d_name, d_in))
        o, i = socket_pair(self, src, dst, (s_name, s_out), (d_name, d_in), outs, ins)
        spec = ins[i]
        if not spec.variadic and self.is_fed(d_name, spec):
            if d_name in self.upstream_of(s_name):
                raise CycleError(self._path(d_name, s_name))
            prev = next(c for c in self.connections if c.dst == d_name and c.dst_in == i)
            raise WiringError(
                f"input {d_name}.{i} is already fed by {prev.src}.{prev.src_out}; "
                "only Variadic inputs take several connections"
            )
        self.connections.append(Connection(s_name, o, d_name, i))
        self._plan = None
        return self

    def declare_input(self, ref: str) -> Pipeline:
        """Make the unconnected input ``"stage.input"`` a pipeline input, supplied per run with
        ``run(query, inputs={ref: value})`` (e.g. documents another framework retrieved)."""
        if ref not in self.inputs:
            self.inputs.append(ref)
            self._plan = None
        return self

    def upstream_of(self, stage: str) -> set[str]:
        """Names of every stage whose output reaches ``stage`` (directly or not)."""
        ups: set[str] = set()
        frontier = [stage]
        while frontier:
            node = frontier.pop()
            for c in self.connections:
                if c.dst == node and c.src not in ups:
                    ups.add(c.src)
                    frontier.append(c.src)
        return ups

    def subgraph(self, stages: Iterable[str], *, name: str | None = None) -> Pipeline:
        """A pipeline of the named stages (the same instances: nothing is re-loaded) and the
        connections among them, e.g. ``p.subgraph(p.upstream_of("cut"))`` runs everything
        that feeds ``cut``. Its inputs are those of the kept stages that were declared."""
        keep = set(stages)
        unknown = keep - set(self.stages)
        if unknown:
            raise WiringError(
                f"subgraph: no stage(s) {sorted(unknown)} (stages: {', '.join(self.stages)})"
            )
        sub = Pipeline(
            name=name or f"{self.name}-subgraph",
            inputs=[r for r in self.inputs if split_ref(r)[0] in keep],
        )
        for n, stage in self.stages.items():
            if n in keep:
                sub.stages[n] = stage
        sub.connections = [c for c in self.connections if c.src in keep and c.dst in keep]
        return sub

    def _path(self, src: str, dst: str) -> list[str]:
        """Stage names on a connected path ``src -> ... -> dst`` (breadth first, by name)."""
        prev: dict[str, str] = {}
        frontier = [src]
        while frontier and dst not in prev:
            nxt = []
            for node in frontier:
                for c in sorted(self.connections, key=lambda c: c.dst):
                    if c.src == node and c.dst not in prev and c.dst != src:
                        prev[c.dst] = node
                        nxt.append(c.dst)
            frontier = nxt
        path = [dst]
        while path[-1] != src:
            path.append(prev[path[-1]])
        return path[::-1]

    def is_fed(self, stage: str, spec: InputSpec) -> bool:
        return any(c.dst == stage and c.dst_in == spec.name for c in self.connections)

    def _connect_linear(self, order: list[str]) -> None:
        for idx, d_name in enumerate(order):
            for spec in self.stages[d_name].input_specs().values():
                for s_name in reversed(order[:idx]):
                    outs = self.stages[s_name].output_types()
                    fits = [o for o, t in outs.items() if sockets_compatible(t, spec)]
                    if len(fits) > 1:
                        raise WiringError(
                            f"linear pipeline: '{s_name}' has several outputs that fit "
                            f"{d_name}.{spec.name} ({', '.join(fits)}); use explicit connections"
                        )
                    if fits:
                        self.connections.append(Connection(s_name, fits[0], d_name, spec.name))
                        break
        if not self.inputs:  # the first open input of a chain is where data enters it
            open_ = [
                f"{n}.{spec.name}"
                for n in order
                for spec in self.stages[n].input_specs().values()
                if spec.required
                and not self.is_fed(n, spec)
                and not self.takes_pipeline_query(spec)
            ]
            if open_:
                self.inputs.append(open_[0])
        self._plan = None

    # --- checking ------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Every wiring problem (missing required input, cycle), not just the first."""
        return wiring_problems(self)

    def validate(self) -> Pipeline:
        self.topological_order()  # a cycle raises CycleError naming it
        problems = self.problems()
        if problems:
            raise WiringError("\n".join(problems))
        return self

    @staticmethod
    def takes_pipeline_query(spec: InputSpec) -> bool:
        return spec.name == "query" and compatible(Query, spec.item_type)

    def topological_order(self) -> list[str]:
        """Stage names in dependency order, ties broken by name (a cycle raises CycleError)."""
        return topological_order(self.stages, self.connections)

    @property
    def order(self) -> list[str]:
        return [s.name for s in self._compile().steps]

    def _compile(self) -> Plan:
        if self._plan is None:
            self._plan = compile_plan(self)
        return self._plan

    # --- running -------------------------------------------------------------------------
    def warm_up(self) -> None:
        if not self._warm:
            for name in self.topological_order():
                stage = self.stages[name]
                try:
                    stage.check_pipeline(self)  # e.g. a fitted model matches its upstream
                    stage.warm_up()
                except Exception as exc:
                    raise StageError.wrap(name, stage.type_name, exc) from exc
            self._warm = True

    def run(
        self,
        query: Query | str,
        *,
        raise_on_error: bool = True,
        inputs: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run the pipeline for one query; returns outputs and a per-stage trace.
        ``inputs`` gives the values of the declared pipeline inputs (``"stage.input"``)."""
        q = Query.coerce(query)
        plan = self._compile()
        values: dict[str, Any] = seed(self, inputs) if (inputs or self.inputs) else {}
        if not self._warm:
            self.warm_up()
        trace: list[StageTrace] = []
        t_start = perf_counter_ns()
        for step in plan.steps:
            kw = kwargs(step, values, q)
            t0 = perf_counter_ns()
            try:
                result = step.stage._run(**kw)
            except Exception as exc:
                raise StageError.wrap(step.name, step.stage.type_name, exc) from exc
            record(step, kw, result, values, perf_counter_ns() - t0, trace)
        return RunResult(self, q, values, Trace(trace, perf_counter_ns() - t_start))

    async def arun(
        self, query: Query | str, *, inputs: Mapping[str, Any] | None = None
    ) -> RunResult:
        """Async run; stages on the same level of the DAG run concurrently."""
        q = Query.coerce(query)
        plan = self._compile()
        values: dict[str, Any] = seed(self, inputs) if (inputs or self.inputs) else {}
        if not self._warm:
            await asyncio.to_thread(self.warm_up)
        trace: list[StageTrace] = []
        t_start = perf_counter_ns()

        async def one(step: Step, kw: dict[str, Any]) -> tuple[Any, int]:
            t0 = perf_counter_ns()
            try:
                res = await step.stage._arun(**kw)
            except Exception as exc:
                raise StageError.wrap(step.name, step.stage.type_name, exc) from exc
            return res, perf_counter_ns() - t0

        for group in plan.levels:
            if len(group) == 1:
                step = group[0]
                kw = kwargs(step, values, q)
                if step.inline:  # pure, fast stage: no coroutine or thread hop
                    t0 = perf_counter_ns()
                    try:
                        res = step.stage._run(**kw)
                    except Exception as exc:
                        raise StageError.wrap(step.name, step.type_name, exc) from exc
                    dt = perf_counter_ns() - t0
                else:
                    res, dt = await one(step, kw)
                record(step, kw, res, values, dt, trace)
                continue
            kws = [kwargs(s, values, q) for s in group]
            outs = await asyncio.gather(*(one(s, k) for s, k in zip(group, kws)))
            for s, k, (res, dt) in zip(group, kws, outs):
                record(s, k, res, values, dt, trace)
        return RunResult(self, q, values, Trace(trace, perf_counter_ns() - t_start))

    async def arun_batch(
        self,
        queries: Iterable[Query | str],
        *,
        concurrency: int = 4,
        return_exceptions: bool = False,
    ) -> list[RunResult | BaseException]:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        qs = [Query.coerce(q) for q in queries]
        self._compile()
        if not self._warm:
            await asyncio.to_thread(self.warm_up)
        sem = asyncio.Semaphore(concurrency)

        async def guarded(q: Query) -> RunResult:
            async with sem:
                return await self.arun(q)

        return await asyncio.gather(*(guarded(q) for q in qs), return_exceptions=return_exceptions)

    def run_batch(
        self,
        queries: Iterable[Query | str],
        *,
        concurrency: int = 4,
        return_exceptions: bool = False,
    ) -> list[RunResult | BaseException]:
        """Run many queries, up to ``concurrency`` at once; results keep the input order."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(
                self.arun_batch(
                    queries, concurrency=concurrency, return_exceptions=return_exceptions
                )
            )
        raise RuntimeError(
            "run_batch() was called inside a running event loop; "
            "use 'await pipeline.arun_batch(...)' instead"
        )

    # --- introspection / serialisation ---------------------------------------------------
    def output_stage(self) -> str:
        if self.output:
            return self.output
        order = self._compile().steps
        consumed = {c.src for c in self.connections}
        for step in reversed(order):
            if step.name not in consumed and Candidates in step.stage.output_types().values():
                return step.name
        for step in reversed(order):
            if Candidates in step.stage.output_types().values():
                return step.name
        return order[-1].name

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": 1, "name": self.name}
        if self.description:
            data["description"] = self.description
        data["stages"] = {n: s.to_dict() for n, s in self.stages.items()}
        data["connections"] = [str(c) for c in self.connections]
        if self.inputs:
            data["inputs"] = list(self.inputs)
        if self.output:
            data["output"] = self.output
        return data

    def to_mermaid(self) -> str:
        return to_mermaid(self)

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, stages={list(self.stages)})"
