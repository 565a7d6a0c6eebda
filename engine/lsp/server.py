"""`smartcampaign lsp`: the language server over stdio (pygls), wiring the protocol to the features."""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from engine import __version__
from engine.language import ast
from engine.language.checks import Catalog
from engine.language.diagnostics import DOCS_ERRORS, Diagnostic
from engine.lsp import features
from engine.lsp.workspace import RuleWorkspace

F = TypeVar("F", bound=Callable[..., Any])

COMPLETION_KINDS = {
    "keyword": types.CompletionItemKind.Keyword,
    "campaign": types.CompletionItemKind.Class,
    "sfdc": types.CompletionItemKind.Reference,
    "program": types.CompletionItemKind.Module,
    "channel": types.CompletionItemKind.Enum,
    "status": types.CompletionItemKind.EnumMember,
}


def to_range(line: int, column: int, end_line: int, end_column: int) -> types.Range:
    """A 1-based, end-exclusive source range as an LSP range (0-based); an empty end covers one character."""
    start = types.Position(max(line - 1, 0), max(column - 1, 0))
    if end_line <= 0 or (end_line, end_column) <= (line, column):
        return types.Range(start, types.Position(start.line, start.character + 1))
    return types.Range(start, types.Position(end_line - 1, max(end_column - 1, 0)))


def to_lsp(diagnostic: Diagnostic) -> types.Diagnostic:
    message = diagnostic.message
    if diagnostic.notes:
        message += "\n" + "\n".join(f"note: {note}" for note in diagnostic.notes)
    return types.Diagnostic(
        range=to_range(diagnostic.line, diagnostic.column, diagnostic.end_line, diagnostic.end_column),
        message=message,
        severity=types.DiagnosticSeverity.Error if diagnostic.is_error else types.DiagnosticSeverity.Warning,
        code=diagnostic.code,
        source="smartcampaign",
        code_description=types.CodeDescription(href=f"{DOCS_ERRORS}#{diagnostic.code}"),
    )


def span_location(span: ast.Span) -> types.Location:
    if span.file.startswith("<builtin>/"):
        from engine.language.sources import package_data

        path = str(package_data("rules") / "channels" / span.file.removeprefix("<builtin>/"))
    else:
        path = str(Path(span.file).resolve())
    return types.Location(
        uri=from_fs_path(path) or path, range=to_range(span.line, span.column, span.end_line, span.end_column)
    )


def build_server(catalog: Catalog | None = None) -> LanguageServer:
    """The server with every feature registered; `catalog` is the store's, when `--db` was given."""
    server = LanguageServer("smartcampaign", __version__)
    state = RuleWorkspace(catalog=catalog)

    def log(message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        print(message, file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):  # the log itself must never fail the server
            server.window_log_message(types.LogMessageParams(type=kind, message=message))

    def guard(handler: F) -> F:
        """Every error of a feature is logged and answered with nothing: it never stops the server."""

        @functools.wraps(handler)
        def wrapper(params: Any) -> Any:
            try:
                return handler(params)
            except Exception as error:
                log(f"smartcampaign lsp: {handler.__name__} failed: {error!r}\n{traceback.format_exc()}")
                return None

        return wrapper  # type: ignore[return-value]

    def path_of(uri: str) -> str:
        return to_fs_path(uri) or uri

    def publish() -> None:
        for path in list(state.open):
            diagnostics = [to_lsp(d) for d in state.diagnostics_for(path)]
            uri = from_fs_path(path) or path
            server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    @server.feature(types.INITIALIZED)
    @guard
    def initialized(params: types.InitializedParams) -> None:
        folders = server.workspace.folders
        if folders:
            first = next(iter(folders.values()))
            state.root = Path(path_of(first.uri))
        elif server.workspace.root_path:
            state.root = Path(server.workspace.root_path)
        state.set_text("", None)
        log(f"smartcampaign lsp {__version__}: rule set at {state.root}", types.MessageType.Info)

    @guard
    def refresh(
        params: types.DidOpenTextDocumentParams | types.DidChangeTextDocumentParams | types.DidSaveTextDocumentParams,
    ) -> None:
        """An opened, edited or saved document: its text over the disk's, then diagnostics again."""
        uri = params.text_document.uri
        state.set_text(path_of(uri), server.workspace.get_text_document(uri).source)
        publish()

    for event in (types.TEXT_DOCUMENT_DID_OPEN, types.TEXT_DOCUMENT_DID_CHANGE, types.TEXT_DOCUMENT_DID_SAVE):
        server.feature(event)(refresh)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guard
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        state.set_text(path_of(uri), None)
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        publish()

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @guard
    def formatting(params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
        path = path_of(params.text_document.uri)
        text = state.text(path)
        output = features.formatted(text, path)
        if output is None or output == text:
            return [] if output is not None else None
        lines = text.splitlines()
        end = types.Position(len(lines), 0)
        return [types.TextEdit(range=types.Range(types.Position(0, 0), end), new_text=output)]

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guard
    def hover(params: types.HoverParams) -> types.Hover | None:
        path = path_of(params.text_document.uri)
        text = features.hover(state, path, params.position.line, params.position.character)
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @guard
    def definition(params: types.DefinitionParams) -> list[types.Location]:
        path = path_of(params.text_document.uri)
        spans = features.definition(state, path, params.position.line, params.position.character)
        return [span_location(span) for span in spans]

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=['"', " "], resolve_provider=False)
    )
    @guard
    def completion(params: types.CompletionParams) -> types.CompletionList:
        items = [
            types.CompletionItem(label=c.label, kind=COMPLETION_KINDS[c.kind], detail=c.detail)
            for c in features.completions(state)
        ]
        return types.CompletionList(is_incomplete=False, items=items)

    return server


def run(db_url: str | None = None) -> None:
    """Serves the protocol on stdin/stdout until the client exits."""
    catalog = None
    if db_url:
        from engine.lsp.workspace import store_catalog

        try:
            catalog = store_catalog(db_url)
        except Exception as error:  # a bad store leaves the server running without a catalog
            print(f"smartcampaign lsp: cannot read the store's catalog: {error}", file=sys.stderr, flush=True)
    build_server(catalog).start_io()
