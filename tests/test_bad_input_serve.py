"""`ulmfit serve` under malformed flags and requests (issue 30, class 6): a one-line CLI error for a flag, and a
4xx JSON error within a second for a request, with the server still serving afterwards."""
import json
import socket
import threading
import time

import pytest

from test_bad_input import one_line_error
from test_cli_errors import runs  # noqa: F401  (the tiny run dirs)
from ulmfit.apps.serve import ServeConfig, close_server, make_server


@pytest.fixture(scope="module")
def server(runs):  # noqa: F811
    srv = make_server(runs.cls, ServeConfig(port=0, threads=1, max_body_bytes=1 << 20))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    close_server(srv)


def raw(server, data: bytes, timeout: float = 5.0) -> tuple[int, dict, float]:
    """Send `data` on a fresh connection; (status, the JSON body, seconds to the answer's end)."""
    start = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), answer[:200]
    assert b"application/json" in head, head
    return int(head.split()[1]), json.loads(body[:_length(answer)]), time.monotonic() - start


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def post(body: bytes, headers: bytes = b"") -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + headers
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class TestMalformedRequests:
    @pytest.mark.parametrize("data, status, said", [
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
        (post(b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), 400, "nested deeper"),
        (post(b'{"texts": ["a"], "explain": ' + b"9" * 5000 + b"}"), 400, "5,000 digits"),
        (post(b'{"texts": ["bad \\ud800 film"]}'), 400, "U+D800"),
        (b"PUT /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 405, "POST"),
        (b"DELETE /predict HTTP/1.1\r\nHost: x\r\n\r\n", 405, "POST"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 431, "headers"),
    ], ids=["content-length-minus-1", "nested-100000", "5000-digit-int", "lone-surrogate", "put", "delete",
            "200-headers"])
    def test_a_4xx_json_error_within_a_second(self, server, data, status, said):
        got, body, seconds = raw(server, data)
        assert (got, said.lower() in body["error"].lower()) == (status, True), body
        assert seconds < 1.0

    def test_the_server_still_serves_afterwards(self, server):
        raw(server, post(b'{"texts": ' + b"[" * 100_000 + b"}"))
        got, body, _ = raw(server, post(b'{"texts": ["a good film"]}'))
        assert got == 200 and len(body["predictions"]) == 1


class TestServeFlags:
    @pytest.mark.parametrize("flags, said", [
        (["--port", "70000"], "--port"), (["--port", "-1"], "--port"), (["--threads", "-2"], "--threads"),
        (["--max-wait-ms", "1e300"], "--max-wait-ms"), (["--max-wait-ms", "nan"], "--max-wait-ms"),
    ], ids=["port-70000", "port-negative", "threads-negative", "max-wait-huge", "max-wait-nan"])
    def test_a_bad_flag_is_one_line(self, runs, capsys, flags, said):  # noqa: F811
        line = one_line_error(["serve", runs.cls, *flags], capsys, runs.cls)
        assert said in line
