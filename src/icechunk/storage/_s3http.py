"""A lean S3 client for the hot requests: SigV4 signing and HTTP/1.1 straight on asyncio.

aiobotocore costs a lot per request for what the storage layer needs from GET, PUT and HEAD
(event hooks, model-driven serialization and parsing, response checksums, aiohttp's
machinery) and a lot once per process (importing botocore and aiohttp, loading the S3
service model). :class:`LeanS3Client` speaks those three operations itself, with the same
call shapes as an aiobotocore client (``await client.get_object(Bucket=..., Key=...)``
returns ``{"Body": ..., "ETag": ...}``; failures raise :class:`S3ResponseError`, whose
``response`` has botocore's shape), so the storage code above does not care which client it
has. The rarer operations (listing, batch deletes, multipart uploads) go to a full
aiobotocore client that is created on first use.

What it does:

* **Signing**: AWS Signature Version 4 (header-based), with the signing key cached per day.
  Over plain http the payload is signed (``x-amz-content-sha256`` is its SHA-256, so S3
  rejects altered bodies, as botocore does); over https it is ``UNSIGNED-PAYLOAD`` plus a
  CRC32 checksum header that S3 verifies. ``checksum_algorithm`` adds that algorithm's
  checksum header. Anonymous requests are not signed.
* **Connections**: HTTP/1.1 keep-alive, a LIFO pool of idle connections per client (one
  client per event loop, see ``_remote``), idle ones dropped after ``_KEEPALIVE_S``;
  ``Connection: close`` answers are honoured. A request on a reused connection that dies
  before any byte of the answer arrived is resent once on a fresh connection when it is
  idempotent (GET, HEAD) - the usual "server closed the idle connection" race.
* **Bodies**: a response with a ``Content-Length`` is received straight into one buffer of
  that size (``asyncio.BufferedProtocol``); request bodies are handed to the socket without
  copies (``writelines``). Chunked and read-until-close answers are understood too.
* **Timeouts**: ``connect_timeout`` for opening a connection, ``read_timeout`` for a pause
  with no progress while waiting for an answer (botocore's defaults: 60 s each).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import ipaddress
import os
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED = "UNSIGNED-PAYLOAD"
_KEEPALIVE_S = 15.0
_DEFAULT_TIMEOUT_S = 60.0
_SCRATCH = 64 * 1024
_USER_AGENT = "icechunk-py (lean s3)"
_VIRTUAL_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_UNRESERVED = "-_.~"


class S3ResponseError(Exception):
    """An error answer from S3, shaped like botocore's ``ClientError`` (``.response``)."""

    def __init__(
        self, status: int, code: str, message: str, operation: str, headers: dict[str, str]
    ) -> None:
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        }
        self.operation_name = operation
        super().__init__(
            f"An error occurred ({code}) when calling the {operation} operation: {message}"
        )


class S3ConnectionError(ConnectionError):
    """The connection broke (or the answer was malformed) before a whole answer arrived."""


class S3ReadTimeoutError(TimeoutError):
    """No progress on an answer for longer than the read timeout."""


# -- request signing --------------------------------------------------------------------------


class Signer:
    """SigV4 for one set of credentials and region (``None`` credentials: unsigned)."""

    def __init__(
        self,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        session_token: str | None,
    ) -> None:
        self.region = region
        self._akid = access_key_id
        self._secret = secret_access_key
        self._token = session_token
        self._key_day = ""
        self._key = b""

    @property
    def anonymous(self) -> bool:
        return self._akid is None

    def _signing_key(self, day: str) -> bytes:
        if day != self._key_day:
            key = ("AWS4" + (self._secret or "")).encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key, self._key_day = key, day
        return self._key

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: dict[str, str],
        payload_hash: str,
    ) -> None:
        """Add the authentication headers to ``headers`` (``path``/``query`` already encoded)."""
        if self._akid is None:
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = payload_hash
        if self._token:
            headers["x-amz-security-token"] = self._token
        signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
        signed["host"] = host
        names = sorted(signed)
        signed_names = ";".join(names)
        canonical = "\n".join(
            (
                method,
                path,
                query,
                "".join(f"{n}:{signed[n]}\n" for n in names),
                signed_names,
                payload_hash,
            )
        )
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(
            self._signing_key(stamp[:8]), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._akid}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )


def canonical_query(params: dict[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}"
        for k, v in sorted(params.items())
    )


# -- checksums --------------------------------------------------------------------------------


def checksum_header(algorithm: str, data: bytes | bytearray | memoryview) -> tuple[str, str] | None:
    """``(header, value)`` of an ``x-amz-checksum-*`` header, or None if not computable here."""
    if algorithm == "CRC32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "SHA1":
        digest = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        digest = hashlib.sha256(data).digest()
    else:
        return None
    return f"x-amz-checksum-{algorithm.lower()}", base64.b64encode(digest).decode()


# -- HTTP/1.1 on asyncio ----------------------------------------------------------------------


class _Answer:
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: Any) -> None:
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


_IDLE, _HEAD, _FIXED, _CHUNKED, _TO_EOF = range(5)


class _Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.progress = 0  # bytes received for the current answer
        self._scratch = memoryview(bytearray(_SCRATCH))
        self._state = _IDLE
        self._waiter: asyncio.Future[_Answer] | None = None
        self._head_only = False
        self._buf = bytearray()
        self._status = 0
        self._reason = ""
        self._headers: dict[str, str] = {}
        self._body: bytearray = bytearray()
        self._view: memoryview | None = None
        self._pos = 0
        self._chunk_left = -1  # chunked: bytes left in the current chunk (-1: at a size line)
        self._keep_alive = False

    # protocol callbacks

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._state == _TO_EOF:
            self._keep_alive = False
            self._finish(self._body)
        elif self._state != _IDLE:
            self._fail(
                S3ConnectionError(
                    "connection closed before the whole answer arrived"
                    + (f" ({exc})" if exc else "")
                )
            )

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost finishes or fails the answer

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._state == _FIXED and self._view is not None:
            return self._view[self._pos :]
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.progress += nbytes
        if self._state == _FIXED:
            self._pos += nbytes
            if self._pos >= len(self._body):
                self._finish(self._body)
            return
        self._feed(bytes(self._scratch[:nbytes]))

    # parsing

    def _feed(self, data: bytes) -> None:
        state = self._state
        if state == _IDLE:  # unsolicited bytes: the connection is not usable any more
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
            return
        if state == _HEAD:
            self._buf += data
            self._parse_head()
        elif state == _CHUNKED:
            self._buf += data
            self._parse_chunks()
        elif state == _TO_EOF:
            self._body += data
        elif state == _FIXED:  # leftover after the head
            self._take_fixed(data)

    def _parse_head(self) -> None:
        while self._state == _HEAD:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 1 << 20:
                    self._fail(S3ConnectionError("answer headers too large"))
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            rest = bytes(self._buf[end + 4 :])
            self._buf = bytearray()
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            try:
                version, status = parts[0], int(parts[1])
            except (IndexError, ValueError):
                self._fail(S3ConnectionError(f"malformed status line {lines[0]!r}"))
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    name = name.strip().lower()
                    value = value.strip()
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if 100 <= status < 200:  # interim answer (100 Continue): the real one follows
                self._buf = bytearray(rest)
                continue
            self._status, self._reason = status, parts[2] if len(parts) > 2 else ""
            self._headers = headers
            connection = headers.get("connection", "").lower()
            self._keep_alive = (
                "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
            )
            if self._head_only or status in (204, 304):
                self._finish(bytearray())
                if rest:
                    self._keep_alive = False
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._state = _CHUNKED
                self._body = bytearray()
                self._chunk_left = -1
                self._buf = bytearray(rest)
                self._parse_chunks()
            elif "content-length" in headers:
                try:
                    length = int(headers["content-length"])
                except ValueError:
                    self._fail(S3ConnectionError("malformed Content-Length"))
                    return
                self._state = _FIXED
                self._body = bytearray(length)
                self._view = memoryview(self._body)
                self._pos = 0
                if length == 0:
                    self._finish(self._body)
                    if rest:
                        self._keep_alive = False
                elif rest:
                    self._take_fixed(rest)
            else:
                self._state = _TO_EOF
                self._keep_alive = False
                self._body = bytearray(rest)

    def _take_fixed(self, data: bytes) -> None:
        room = len(self._body) - self._pos
        take = min(room, len(data))
        self._body[self._pos : self._pos + take] = data[:take]
        self._pos += take
        if len(data) > take:
            self._keep_alive = False
        if self._pos >= len(self._body):
            self._finish(self._body)

    def _parse_chunks(self) -> None:
        buf = self._buf
        pos = 0
        while True:
            if self._chunk_left == -1:  # at a size line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                try:
                    size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._fail(S3ConnectionError("malformed chunked encoding"))
                    return
                pos = eol + 2
                self._chunk_left = size if size else -2
            elif self._chunk_left == -2:  # after the last chunk: trailers, an empty line
                if buf[pos : pos + 2] == b"\r\n":
                    end = pos + 2
                else:
                    found = buf.find(b"\r\n\r\n", pos)
                    if found < 0:
                        break
                    end = found + 4
                if len(buf) > end:
                    self._keep_alive = False
                self._buf = bytearray()
                self._finish(self._body)
                return
            else:  # chunk data and its CRLF
                if len(buf) < pos + self._chunk_left + 2:
                    break
                self._body += buf[pos : pos + self._chunk_left]
                pos += self._chunk_left + 2
                self._chunk_left = -1
        del buf[:pos]

    def _finish(self, body: Any) -> None:
        self._state = _IDLE
        self._view = None
        self.reusable = self._keep_alive and not self.closed
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(_Answer(self._status, self._reason, self._headers, body))

    def _fail(self, exc: BaseException) -> None:
        self._state = _IDLE
        self._view = None
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # use

    def send(self, head: bytes, body: Any, head_only: bool) -> asyncio.Future[_Answer]:
        assert self.transport is not None and self._state == _IDLE
        self._waiter = self._loop.create_future()
        self._state = _HEAD
        self._head_only = head_only
        self._buf = bytearray()
        self.progress = 0
        self.reusable = False
        if body is not None and len(body):
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return self._waiter

    def abort(self, exc: BaseException) -> None:
        self._fail(exc)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def drop(self) -> None:
        """Close the socket without the event loop (the loop is closed or not ours)."""
        transport = self.transport
        ssl_protocol = getattr(transport, "_ssl_protocol", None)
        if ssl_protocol is not None:  # TLS: the socket is the one of the transport below
            transport = getattr(ssl_protocol, "_transport", None)
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()


class HttpPool:
    """Connections to one ``scheme://host:port``."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int,
        ssl_context: Any = None,
    ) -> None:
        self._scheme, self._host, self._port = scheme, host, port
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._ssl = ssl_context
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._addresses: tuple[float, list[tuple[str, int]]] | None = None
        self._closed = False
        try:
            ipaddress.ip_address(host.strip("[]"))
            self._literal = True
        except ValueError:
            self._literal = False

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[tuple[str, int]]:
        now = time.monotonic()
        if self._addresses is not None and now - self._addresses[0] < 30.0:
            return self._addresses[1]
        import socket

        infos = await loop.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        found: list[tuple[str, int]] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = (str(sockaddr[0]), int(sockaddr[1]))
            if address not in found:
                found.append(address)
        self._addresses = (now, found)
        return found

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if self._ssl is not None:
            extra = {"ssl": self._ssl, "server_hostname": self._host}
        async with asyncio.timeout(self._connect_timeout):
            if self._literal:
                _, proto = await loop.create_connection(
                    lambda: _Connection(loop), self._host.strip("[]"), self._port, **extra
                )
                return proto
            addresses = await self._resolve(loop)
            error: BaseException | None = None
            for host, port in addresses:
                try:
                    _, proto = await loop.create_connection(
                        lambda: _Connection(loop), host, port, **extra
                    )
                    return proto
                except OSError as err:
                    error = err
            self._addresses = None
            raise error or S3ConnectionError(f"cannot resolve {self._host}")

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            transport = conn.transport
            if (
                not conn.closed
                and transport is not None
                and not transport.is_closing()
                and now - conn.idle_since < _KEEPALIVE_S
            ):
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if conn.reusable and not conn.closed and not self._closed:
            if len(self._idle) < self._max_idle:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
                return
        conn.close()

    async def request(
        self, head: bytes, body: Any, *, head_only: bool, idempotent: bool
    ) -> _Answer:
        conn = self._take_idle()
        reused = conn is not None
        while True:
            if conn is None:
                conn = await self._connect()
            self._busy.add(conn)
            try:
                answer = await self._exchange(conn, head, body, head_only)
            except S3ConnectionError:
                if reused and idempotent and conn.progress == 0:
                    self._busy.discard(conn)
                    conn.close()
                    conn, reused = None, False
                    continue  # the server had closed the idle connection: once more, fresh
                self._busy.discard(conn)
                conn.close()
                raise
            except BaseException:
                self._busy.discard(conn)
                conn.abort(S3ConnectionError("request abandoned"))
                raise
            self._give_back(conn)
            return answer

    async def _exchange(
        self, conn: _Connection, head: bytes, body: Any, head_only: bool
    ) -> _Answer:
        if conn.closed:
            raise S3ConnectionError("connection closed")
        future = conn.send(head, body, head_only)
        timeout = self._read_timeout
        loop = asyncio.get_running_loop()

        def state() -> tuple[int, int]:
            # bytes received so far, and bytes of the request still waiting to be sent
            # (a large upload on a slow link is progress too)
            transport = conn.transport
            pending = transport.get_write_buffer_size() if transport is not None else 0
            return conn.progress, pending

        seen = state()
        timer: asyncio.TimerHandle

        def check() -> None:
            nonlocal seen, timer
            if future.done():
                return
            now = state()
            if now == seen:
                conn.abort(S3ReadTimeoutError(f"no progress for {timeout:g} s (read timeout)"))
                return
            seen = now
            timer = loop.call_later(timeout, check)

        timer = loop.call_later(timeout, check)
        try:
            return await future
        finally:
            timer.cancel()

    def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()

    def drop(self) -> None:
        self._closed = True
        for conn in (*self._idle, *self._busy):
            try:
                conn.drop()
            except Exception:
                pass
        self._idle.clear()
        self._busy.clear()


# -- the client ---------------------------------------------------------------------------------


class _Body:
    """The ``Body`` of a GetObject answer: already read, used like aiobotocore's stream."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def read(self) -> bytes:
        return self._data

    def close(self) -> None:
        pass


class _Request:
    """What ``before-send`` hooks see (like botocore's ``AWSPreparedRequest``)."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: Any) -> None:
        self.method, self.url, self.headers, self.body = method, url, headers, body


class _Hooks:
    """``client.meta.events``: ``register("before-send.s3.PutObject", handler)`` and friends.

    Handlers registered here also go to the full client the rare operations use.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._forward: Any = None

    def register(self, event: str, handler: Callable[..., Any], *args: Any, **kw: Any) -> None:
        self._handlers.setdefault(event, []).append(handler)
        if self._forward is not None:
            self._forward.register(event, handler, *args, **kw)

    def unregister(self, event: str, handler: Callable[..., Any], *args: Any, **kw: Any) -> None:
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)
        if self._forward is not None:
            self._forward.unregister(event, handler, *args, **kw)

    def emit(self, event: str, **kwargs: Any) -> None:
        for handler in self._handlers.get(event, ()):
            handler(event_name=event, **kwargs)

    def forward_to(self, events: Any) -> None:
        self._forward = events
        for event, handlers in self._handlers.items():
            for handler in handlers:
                events.register(event, handler)

    @property
    def active(self) -> bool:
        return bool(self._handlers)


class _Meta:
    def __init__(self, region: str, endpoint_url: str) -> None:
        self.events = _Hooks()
        self.region_name = region
        self.endpoint_url = endpoint_url
        self.service_model = None


class LeanS3Client:
    """GetObject, PutObject and HeadObject done here; everything else by ``full_client()``."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        path_style: bool,
        signer: Signer,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int,
        full_client: Callable[[], Awaitable[Any]],
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        checksum_algorithm: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint_url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        base_path = parts.path.rstrip("/")
        if path_style:
            self._prefix = f"{base_path}/{quote(bucket, safe=_UNRESERVED)}/"
        else:
            host = f"{bucket}.{host}"
            self._prefix = f"{base_path}/"
        default_port = port == (443 if scheme == "https" else 80)
        self._host_header = host if default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # IPv6 literal
            self._host_header = f"[{host}]" if default_port else f"[{host}]:{port}"
        self._url_base = f"{scheme}://{self._host_header}"
        self._https = scheme == "https"
        ssl_context = None
        if self._https:
            ssl_context = _ssl_context()
        self._pool = HttpPool(
            scheme,
            host,
            port,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_idle=max_idle,
            ssl_context=ssl_context,
        )
        self._bucket = bucket
        self._signer = signer
        self._read_headers = dict(read_headers or {})
        self._write_headers = dict(write_headers or {})
        self._checksum = checksum_algorithm
        self._full_factory = full_client
        self._full: Any = None
        self._full_lock = asyncio.Lock()
        self.meta = _Meta(signer.region, endpoint_url)

    # -- the rare operations: a full aiobotocore client ----------------------------------

    async def full_client(self) -> Any:
        if self._full is None:
            async with self._full_lock:
                if self._full is None:
                    client = await self._full_factory()
                    self.meta.events.forward_to(client.meta.events)
                    self._full = client
        return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(**kwargs: Any) -> Any:
            client = await self.full_client()
            return await getattr(client, name)(**kwargs)

        call.__name__ = name
        return call

    # -- requests ---------------------------------------------------------------------------

    async def _send(
        self,
        operation: str,
        method: str,
        key: str,
        headers: dict[str, str],
        body: Any = None,
        payload_hash: str = _EMPTY_SHA256,
        *,
        idempotent: bool,
    ) -> _Answer:
        path = self._prefix + quote(key, safe="/~")
        self._signer.sign(method, self._host_header, path, "", headers, payload_hash)
        headers["User-Agent"] = _USER_AGENT
        if body is not None:
            headers["Content-Length"] = str(len(body))
        events = self.meta.events
        if events.active:
            request = _Request(method, self._url_base + path, headers, body)
            events.emit(f"before-send.s3.{operation}", request=request)
        head = "".join(
            [
                f"{method} {path} HTTP/1.1\r\nHost: {self._host_header}\r\n",
                *(f"{k}: {v}\r\n" for k, v in headers.items()),
                "\r\n",
            ]
        ).encode("latin-1")
        answer = await self._pool.request(
            head, body, head_only=method == "HEAD", idempotent=idempotent
        )
        if answer.status >= 300:
            if _redirected(answer, self._signer.region):
                raise _Delegate  # wrong region: botocore follows S3's redirects
            raise _error(operation, answer)
        return answer

    def _common(self, params: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
        unknown = params.keys() - _KNOWN_PARAMS
        if unknown or params.get("Bucket") != self._bucket:
            raise _Delegate
        headers = dict(extra)
        if params.get("RequestPayer"):
            headers["x-amz-request-payer"] = str(params["RequestPayer"]).lower()
        return headers

    async def get_object(self, **params: Any) -> dict[str, Any]:
        try:
            headers = self._common(params, self._read_headers)
            if params.get("Range"):
                headers["Range"] = params["Range"]
            if params.get("IfMatch"):
                headers["If-Match"] = params["IfMatch"]
            if params.get("IfNoneMatch"):
                headers["If-None-Match"] = params["IfNoneMatch"]
            answer = await self._send("GetObject", "GET", params["Key"], headers, idempotent=True)
        except _Delegate:
            delegated: dict[str, Any] = await (await self.full_client()).get_object(**params)
            return delegated
        return _result(answer, Body=_Body(bytes(answer.body)))

    async def head_object(self, **params: Any) -> dict[str, Any]:
        try:
            headers = self._common(params, self._read_headers)
            if params.get("IfMatch"):
                headers["If-Match"] = params["IfMatch"]
            if params.get("IfNoneMatch"):
                headers["If-None-Match"] = params["IfNoneMatch"]
            answer = await self._send("HeadObject", "HEAD", params["Key"], headers, idempotent=True)
        except _Delegate:
            delegated: dict[str, Any] = await (await self.full_client()).head_object(**params)
            return delegated
        return _result(answer)

    async def put_object(self, **params: Any) -> dict[str, Any]:
        try:
            body = params.get("Body", b"")
            if isinstance(body, str):
                body = body.encode()
            if not isinstance(body, bytes | bytearray | memoryview):
                raise _Delegate  # a file object or a stream
            headers = self._common(params, self._write_headers)
            conditional = False
            if params.get("IfNoneMatch"):
                headers["If-None-Match"] = params["IfNoneMatch"]
                conditional = True
            if params.get("IfMatch"):
                headers["If-Match"] = params["IfMatch"]
                conditional = True
            if params.get("StorageClass"):
                headers["x-amz-storage-class"] = params["StorageClass"]
            if params.get("ContentType"):
                headers["Content-Type"] = params["ContentType"]
            algorithm = params.get("ChecksumAlgorithm") or self._checksum
            if self._signer.anonymous:
                payload_hash = _UNSIGNED
            elif self._https:
                payload_hash = _UNSIGNED
                algorithm = algorithm or "CRC32"  # S3 checks the body against it
            else:
                payload_hash = hashlib.sha256(body).hexdigest()
            if algorithm:
                found = checksum_header(str(algorithm).upper(), body)
                if found is None:
                    raise _Delegate  # CRC32C, CRC64NVME: botocore computes those
                headers[found[0]] = found[1]
            # A plain PUT can be sent again safely; a conditional one must not be
            # (a second copy would fail against the first), _remote sorts those out.
            answer = await self._send(
                "PutObject",
                "PUT",
                params["Key"],
                headers,
                body,
                payload_hash,
                idempotent=not conditional,
            )
        except _Delegate:
            delegated: dict[str, Any] = await (await self.full_client()).put_object(**params)
            return delegated
        return _result(answer)

    # -- life cycle ---------------------------------------------------------------------

    async def close(self) -> None:
        self._pool.close()
        full, self._full = self._full, None
        if full is not None:
            await full.close()

    def abandon(self, abandon_full: Callable[[Any], None]) -> None:
        self._pool.drop()
        if self._full is not None:
            abandon_full(self._full)


class _Delegate(Exception):
    """This request is one for the full client (an option or answer the lean one lacks)."""


_KNOWN_PARAMS = frozenset(
    {
        "Bucket",
        "Key",
        "Range",
        "IfMatch",
        "IfNoneMatch",
        "RequestPayer",
        "Body",
        "StorageClass",
        "ContentType",
        "ChecksumAlgorithm",
    }
)


def _redirected(answer: _Answer, region: str) -> bool:
    """Whether S3 says the bucket lives in another region (botocore re-sends those)."""
    if answer.status in (301, 307):
        return True
    bucket_region = answer.headers.get("x-amz-bucket-region")
    return answer.status == 400 and bucket_region is not None and bucket_region != region


def _result(answer: _Answer, **extra: Any) -> dict[str, Any]:
    headers = answer.headers
    result: dict[str, Any] = {
        "ResponseMetadata": {"HTTPStatusCode": answer.status, "HTTPHeaders": headers},
        **extra,
    }
    if "etag" in headers:
        result["ETag"] = headers["etag"]
    if "content-length" in headers:
        result["ContentLength"] = int(headers["content-length"])
    if "last-modified" in headers:
        result["LastModified"] = headers["last-modified"]
    if "x-amz-version-id" in headers:
        result["VersionId"] = headers["x-amz-version-id"]
    return result


def _error(operation: str, answer: _Answer) -> S3ResponseError:
    code, message = "", ""
    body = bytes(answer.body or b"")
    if body:
        code = _xml_text(body, "Code")
        message = _xml_text(body, "Message")
    if not code:
        code = str(answer.status)  # HEAD answers have no body (botocore does the same)
        message = message or answer.reason
    return S3ResponseError(answer.status, code, message, operation, answer.headers)


def _xml_text(body: bytes, tag: str) -> str:
    match = re.search(rb"<" + tag.encode() + rb">(.*?)</" + tag.encode() + rb">", body, re.S)
    if match is None:
        return ""
    return html.unescape(match.group(1).decode("utf-8", "replace"))


_SSL_CONTEXT: Any = None


def _ssl_context() -> Any:
    """Verify like botocore: ``AWS_CA_BUNDLE``, else certifi's bundle, else the system's."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        import ssl

        cafile = os.environ.get("AWS_CA_BUNDLE")
        if not cafile:
            try:
                import certifi

                cafile = certifi.where()
            except ImportError:
                cafile = None
        _SSL_CONTEXT = ssl.create_default_context(cafile=cafile)
    return _SSL_CONTEXT


def virtual_hostable(bucket: str) -> bool:
    """Whether ``bucket`` can be addressed as ``bucket.host`` (botocore's rule)."""
    if not _VIRTUAL_BUCKET.fullmatch(bucket):
        return False
    try:
        ipaddress.ip_address(bucket)
    except ValueError:
        return True
    return False


def aws_region_ok(region: str) -> bool:
    return bool(_AWS_REGION.fullmatch(region)) and not region.startswith("cn-")
