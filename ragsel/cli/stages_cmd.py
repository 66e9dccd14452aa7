"""``ragsel stages``: every registered stage type with its one-line doc, config fields and
module path."""

from __future__ import annotations

from typing import Any

import typer


def describe(name: str) -> dict[str, Any]:
    """One stage type as a dict: name, class, module, one-line doc and config fields."""
    from ragsel.registry import get_stage_class

    cls = get_stage_class(name)
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    fields = {}
    for fname, f in cls.Config.model_fields.items():
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        fields[fname] = {
            "type": _type_text(f.annotation),
            "required": f.is_required(),
            "default": default if isinstance(default, (str, int, float, bool, list)) else None,
            "description": f.description or "",
        }
    return {
        "type": name,
        "class": cls.__qualname__,
        "module": cls.__module__,
        "doc": " ".join(doc.split()),
        "config": fields,
    }


def register(app: typer.Typer) -> None:
    @app.command("stages")
    def stages(
        name: str = typer.Argument(None, help="Show only this stage type."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    ) -> None:
        """List every stage type: one-line doc, config fields and module path."""
        from ragsel.cli._common import cli_errors, print_json
        from ragsel.registry import BUILTIN_STAGES, stage_names

        with cli_errors():
            names = [name] if name else [n for n in stage_names() if _public(n)]
            rows = []
            for n in names:
                try:
                    rows.append(describe(n))
                except ImportError as exc:  # a connector stage whose framework is absent
                    if name:
                        raise
                    target = BUILTIN_STAGES.get(n, "?")
                    rows.append({"type": n, "module": target, "unavailable": str(exc)})
        if as_json:
            print_json(rows)
            return
        for row in rows:
            if "unavailable" in row:
                typer.echo(
                    f"{row['type']}  ({row['module']})\n    unavailable: {row['unavailable']}\n"
                )
                continue
            typer.echo(f"{row['type']}  ({row['module']}.{row['class']})")
            typer.echo(f"    {row['doc']}")
            for fname, f in row["config"].items():
                default = "required" if f["required"] else f"default {f['default']!r}"
                desc = f" - {f['description']}" if f["description"] else ""
                typer.echo(f"    {fname}: {f['type']} ({default}){desc}")
            typer.echo("")


def _type_text(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _public(name: str) -> bool:
    """Test fakes are not offered to users."""
    from ragsel.registry import is_test_stage

    return not is_test_stage(name)
