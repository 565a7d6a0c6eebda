"""A small JSON-RPC client with Content-Length framing that talks to a real `smartcampaign lsp` subprocess."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

SMARTCAMPAIGN = str(Path(sys.executable).with_name("smartcampaign"))


class LspClient:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [SMARTCAMPAIGN, "lsp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._next_id = 0
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    self._messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                key, _, value = line.decode("ascii").partition(":")
                headers[key.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self._messages.put(json.loads(body))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def _next(self) -> dict[str, Any]:
        message = self._messages.get(timeout=60)
        if message is None:
            raise AssertionError(f"the server exited: {self.stderr()}")
        return message

    def request(self, method: str, params: Any) -> Any:
        answer = self.answer(method, params)
        assert "error" not in answer, answer["error"]
        return answer.get("result")

    def answer(self, method: str, params: Any) -> dict[str, Any]:
        """The whole response message (a result or an error)."""
        self._next_id += 1
        ident = self._next_id
        self.send({"id": ident, "method": method, "params": params})
        while True:
            message = self._next()
            if message.get("id") == ident and "method" not in message:
                return message
            if "id" in message and "method" in message:  # a request from the server: answer it
                self.send({"id": message["id"], "result": None})
            else:
                self.notifications.append(message)

    def wait_for(self, method: str, **match: Any) -> dict[str, Any]:
        """The next (or an already received) notification `method` whose params include `match`."""
        for index, note in enumerate(self.notifications):
            if note["method"] == method and all(note["params"].get(k) == v for k, v in match.items()):
                return self.notifications.pop(index)["params"]  # type: ignore[no-any-return]
        while True:
            message = self._next()
            if "id" in message and "method" in message:
                self.send({"id": message["id"], "result": None})
                continue
            if message.get("method") == method and all(message["params"].get(k) == v for k, v in match.items()):
                return message["params"]  # type: ignore[no-any-return]
            self.notifications.append(message)

    def initialize(self, root: Path) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {},
            },
        )
        self.notify("initialized", {})
        return result  # type: ignore[no-any-return]

    def open(self, path: Path, text: str | None = None) -> str:
        uri = path.as_uri()
        content = path.read_text(encoding="utf-8") if text is None else text
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "smartcampaign", "version": 1, "text": content}},
        )
        return uri

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> int:
        if self.process.poll() is None:
            try:
                self.request("shutdown", None)
                self.notify("exit", None)
            except (AssertionError, OSError, queue.Empty):
                pass
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
