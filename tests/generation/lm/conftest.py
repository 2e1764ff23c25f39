"""Servers for the LM layer's tests: a scripted fake OpenAI-compatible server (each test sets its
`reply`), and llama-cpp-python's real server on the embedded SmolLM2 GGUF, started once per session."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from generation.lm import load_model
from generation.lm.openai_compat import OpenAICompatibleModel

Reply = tuple[int, dict[str, str], Any]
Handler = Callable[[str, str, dict[str, Any]], Reply]


def models_reply(method: str, path: str, body: dict[str, Any]) -> Reply:
    """What every fake answers unless a test says otherwise: it serves the model "fake", nothing else."""
    if method == "GET" and path == "/v1/models":
        return (
            200,
            {},
            {"data": [{"id": "fake", "object": "model", "owned_by": "test", "created": time.time()}]},
        )
    return 404, {}, {"error": {"message": f"no route {path}"}}


class FakeServer:
    def __init__(self) -> None:
        self.reply: Handler = models_reply
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.clients: list[OpenAICompatibleModel] = []
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                with fake.lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    fake.log.append(
                        {
                            "method": method,
                            "path": self.path,
                            "body": body,
                            "time": time.monotonic(),
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                try:
                    status, headers, payload = fake.reply(method, self.path, body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def calls(self, path: str = "/v1/completions") -> list[dict[str, Any]]:
        with self.lock:
            return [entry for entry in self.log if entry["path"] == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    for lm in server.clients:
        lm.close()
    server.stop()


def connect(fake: FakeServer, options: str = "", *, model: str = "fake") -> OpenAICompatibleModel:
    query = f"?{options}" if options else ""
    lm = load_model(f"openai:{fake.url}{query}#{model}")
    assert isinstance(lm, OpenAICompatibleModel)
    lm.backoff_base_s = 0.01
    fake.clients.append(lm)
    return lm


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llama_cpp_server(*extra: str) -> Iterator[str]:
    """llama-cpp-python's server on the embedded SmolLM2 GGUF, at a free port; yields its /v1 URL."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is in requirements-dev.txt")
    from generation.lm.local import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir

    gguf = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    for _ in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "false", *extra,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                if requests.get(url + "/models", timeout=5).ok:
                    break
            except (OSError, requests.RequestException):
                time.sleep(0.2)
        if process.poll() is None:
            break
        output = process.stdout.read() if process.stdout else ""
        if "address already in use" not in output:
            pytest.fail(f"llama-cpp-python's server did not start:\n{output[-3000:]}")
    else:
        pytest.fail("llama-cpp-python's server found no free port in 3 tries")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    with llama_cpp_server("--logits_all", "true") as url:
        yield url
