"""The tree to AST builder's reductions for flows: the flow block, its steps (actions, waits, requested and
executed campaigns, Remove from Flow) and choices (`if` / `else if` / `else`)."""

from __future__ import annotations

from typing import Any

from lark import Token

from engine.language import ast
from engine.language.build_base import _BuilderBase, _int, _Marker, _unit, _unquote


class _FlowBuilder(_BuilderBase):
    """Reduction callbacks for flows and their steps."""

    # ---- flows ---------------------------------------------------------------------------------
    def flow(self, children: list[Any]) -> _Marker:
        return _Marker("flow", tuple(self._nodes(children)), self._span(children))

    def add_step(self, children: list[Any]) -> ast.AddToCampaign:
        ref = self._ref(children)
        assert ref is not None
        status = self._strings(children)[-1]
        return ast.AddToCampaign(ref, _unquote(status), self._span(children))

    def change_step(self, children: list[Any]) -> ast.ChangeStatusInCampaign:
        ref = self._ref(children)
        assert ref is not None
        status = self._strings(children)[-1]
        return ast.ChangeStatusInCampaign(ref, _unquote(status), self._span(children))

    def remove_step(self, children: list[Any]) -> ast.RemoveFromCampaign:
        ref = self._ref(children)
        assert ref is not None
        return ast.RemoveFromCampaign(ref, self._span(children))

    def program_step(self, children: list[Any]) -> ast.ChangeProgramStatus:
        strings = self._strings(children)
        return ast.ChangeProgramStatus(_unquote(strings[0]), _unquote(strings[1]), self._span(children))

    def wait_step(self, children: list[Any]) -> ast.Wait:
        amount = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        unit = next(c for c in children if isinstance(c, Token) and c.type == "TIME_UNIT")
        return ast.Wait(_int(amount), _unit(unit), self._span(children))

    def wait_until_step(self, children: list[Any]) -> ast.WaitUntil:
        return ast.WaitUntil(str(self._token(children, "DATETIME")), self._span(children))

    def wait_window_step(self, children: list[Any]) -> ast.WaitWindow:
        amounts = [c for c in children if type(c) is Token and c.type == "INT"]
        units = [c for c in children if type(c) is Token and c.type == "TIME_UNIT"]
        days: list[Any] = [str(c) for c in children if type(c) is Token and c.type == "WEEKDAY"]
        return ast.WaitWindow(
            _int(amounts[0]) if amounts else 0,
            _unit(units[0]) if units else "day",
            days[0],
            days[-1],
            str(self._token(children, "CLOCK")),
            self._span(children),
        )

    def request_step(self, children: list[Any]) -> ast.RequestCampaign:
        return ast.RequestCampaign(_unquote(self._strings(children)[0]), self._span(children))

    def execute_step(self, children: list[Any]) -> ast.ExecuteCampaign:
        return ast.ExecuteCampaign(_unquote(self._strings(children)[0]), self._span(children))

    def remove_flow_step(self, children: list[Any]) -> ast.RemoveFromFlow:
        strings = self._strings(children)
        return ast.RemoveFromFlow(_unquote(strings[0]) if strings else None, self._span(children))

    def block(self, children: list[Any]) -> _Marker:
        return _Marker("block", tuple(self._nodes(children)), self._span(children))

    def _branch(self, children: list[Any], conditional: bool) -> ast.Branch:
        nodes = self._nodes(children)
        block = nodes[-1]
        condition = nodes[0] if conditional else None
        return ast.Branch(condition, tuple(block.value), self._span(children))

    def if_branch(self, children: list[Any]) -> ast.Branch:
        return self._branch(children, True)

    def else_if_branch(self, children: list[Any]) -> ast.Branch:
        return self._branch(children, True)

    def else_branch(self, children: list[Any]) -> ast.Branch:
        return self._branch(children, False)

    def choice(self, children: list[Any]) -> ast.Choice:
        return ast.Choice(tuple(self._nodes(children)), self._span(children))
