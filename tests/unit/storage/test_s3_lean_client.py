"""The lean S3 client (``icechunk/storage/_s3http.py``) and how ``S3Storage`` uses it.

Against the moto server of the other S3 tests (signing, conditional writes, ranges, large
bodies, concurrency) and against tiny scripted HTTP servers on 127.0.0.1 for what moto
does not do on demand (keep-alive connections closed under the client, chunked answers,
error answers, answers that never come, TLS).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icechunk.exceptions import ObjectNotFoundError, PreconditionFailedError, StorageError
from icechunk.storage import (
    ByteRange,
    S3Credentials,
    S3StaticCredentials,
    StorageRetriesSettings,
    StorageSettings,
    StorageTimeoutSettings,
    _s3http,
    s3_storage,
)
from icechunk.storage._remote import FailureKind
from icechunk.storage._s3http import (
    LeanS3Client,
    S3ConnectionError,
    S3ReadTimeoutError,
    S3ResponseError,
    Signer,
)
from icechunk.storage.s3 import S3Options, _lean_plan
from tests.helpers.storage_servers import S3_ACCESS_KEY, S3_BUCKET, S3_REGION, S3_SECRET_KEY, MotoS3

HOST = "127.0.0.1"


def _lean(
    url: str,
    *,
    bucket: str = S3_BUCKET,
    path_style: bool = True,
    akid: str | None = S3_ACCESS_KEY,
    secret: str | None = S3_SECRET_KEY,
    token: str | None = None,
    read_timeout: float = 10.0,
    full: Any = None,
    max_idle: int = 16,
    **kwargs: Any,
) -> LeanS3Client:
    async def full_client() -> Any:
        if full is None:
            raise AssertionError("the full client should not be needed")
        return full

    return LeanS3Client(
        endpoint_url=url,
        bucket=bucket,
        path_style=path_style,
        signer=Signer(S3_REGION, akid, secret, token),
        connect_timeout=5.0,
        read_timeout=read_timeout,
        max_idle=max_idle,
        full_client=full_client,
        **kwargs,
    )


async def _handle(storage: Any) -> Any:
    return (await storage._client_handle(storage._loop_state())).client


def _fast(storage: Any, tries: int = 3, **timeouts: int) -> Any:
    return storage.with_settings(
        StorageSettings(
            retries=StorageRetriesSettings(max_tries=tries, initial_backoff_ms=1, max_backoff_ms=2),
            timeouts=StorageTimeoutSettings(**timeouts) if timeouts else None,
        )
    )


def _scripted_storage(url: str, *, anonymous: bool = False, **options: Any) -> Any:
    """An S3 storage of prefix ``p`` on a scripted server (signed unless ``anonymous``)."""
    if anonymous:
        credentials: dict[str, Any] = {"anonymous": True}
    else:
        credentials = {"access_key_id": S3_ACCESS_KEY, "secret_access_key": S3_SECRET_KEY}
    return s3_storage(
        bucket=S3_BUCKET,
        prefix="p",
        endpoint_url=url,
        allow_http=url.startswith("http://"),
        region=S3_REGION,
        **credentials,
        **options,
    )


# -- a scripted HTTP/1.1 server ------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


def answer(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    close: bool = False,
) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    extra = dict(headers or {})
    extra.setdefault("Content-Length", str(len(body)))
    if close:
        extra["Connection"] = "close"
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def error_xml(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>r1</RequestId></Error>"
    ).encode()


@dataclass
class RawServer:
    """Answers request ``n`` with ``actions[n]`` (default: 200 with an ETag).

    An action is the bytes to send, a list of byte strings (sent with pauses between them),
    ``"drop"`` (close the connection without answering), ``"hang"`` (never answer) or a
    callable of the request returning one of those.
    """

    actions: list[Any] = field(default_factory=list)
    ssl_context: Any = None
    close_after_answer: bool = False  # keep-alive answers, then the server closes anyway
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    async def __aenter__(self) -> RawServer:
        self._stop = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._server = await asyncio.start_server(self._serve, HOST, 0, ssl=self.ssl_context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://{HOST}:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._stop.set()
        for writer in self._writers:
            writer.close()
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                request = Seen(method, path, headers, body, number)
                self.seen.append(request)
                index = len(self.seen) - 1
                action: Any = self.actions[index] if index < len(self.actions) else None
                if callable(action):
                    action = action(request)
                if action is None:
                    action = answer(200, b"", {"ETag": '"e1"'})
                if action == "drop":
                    writer.transport.abort()
                    return
                if action == "hang":
                    await self._stop.wait()
                    return
                for piece in action if isinstance(action, list) else [action]:
                    writer.write(piece)
                    await writer.drain()
                    if isinstance(action, list):
                        await asyncio.sleep(0.01)
                sent = b"".join(action if isinstance(action, list) else [action])
                if (
                    self.close_after_answer
                    or b"Connection: close" in sent
                    or sent.startswith(b"HTTP/1.0")
                ):
                    writer.close()
                    return
        finally:
            writer.close()


# -- signing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "token", "extra"),
    [
        ("chunks/ABC123", None, {}),
        ("a b/c~d+e=f&g%h:é/x", "session-token/+=", {"Range": "bytes=-17"}),
        ("/rooted//double", None, {"If-None-Match": "*", "x-amz-request-payer": "requester"}),
    ],
)
def test_signature_matches_botocore(key: str, token: str | None, extra: dict[str, str]) -> None:
    """Our SigV4 headers are what botocore's S3 signer computes for the same request."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    client = _lean("http://127.0.0.1:9000", bucket="my-bucket", token=token)
    body = b"payload bytes"
    headers = dict(extra)
    payload = hashlib.sha256(body).hexdigest()
    path = client._prefix + _s3http.quote(key, safe="/~")
    client._signer.sign("PUT", client._host_header, path, "", headers, payload)
    authorization = headers.pop("Authorization")
    request = AWSRequest(method="PUT", url=client._url_base + path, data=body, headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(Credentials(S3_ACCESS_KEY, S3_SECRET_KEY, token), "s3", S3_REGION)
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    assert authorization.endswith(f"Signature={expected}")
    assert f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}," in authorization
    assert ("x-amz-security-token" in headers) == (token is not None)


@pytest.fixture
def moto_auth(moto_s3: MotoS3):
    """Moto checking signatures (of an IAM user it knows) for the duration of a test."""
    import boto3
    from moto import settings

    iam = boto3.client(
        "iam",
        endpoint_url=moto_s3.url,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    )
    name = f"lean-{os.getpid()}-{id(iam)}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="all-s3",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before


async def test_moto_accepts_our_signatures(moto_s3: MotoS3, moto_auth: tuple[str, str]) -> None:
    akid, secret = moto_auth
    client = _lean(moto_s3.url, akid=akid, secret=secret)
    key = "lean-signed/a b/c~d+e=é"
    put = await client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"signed body")
    got = await client.get_object(Bucket=S3_BUCKET, Key=key, Range="bytes=2-5")
    assert await got["Body"].read() == b"gned"
    assert (await client.head_object(Bucket=S3_BUCKET, Key=key))["ETag"] == put["ETag"]
    wrong = _lean(moto_s3.url, akid=akid, secret="not-the-secret")
    with pytest.raises(S3ResponseError) as info:
        await wrong.get_object(Bucket=S3_BUCKET, Key=key)
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "SignatureDoesNotMatch" and error["Message"]
    await client.close()
    await wrong.close()


# -- against moto: conditional writes, ranges, large bodies, concurrency -----------------------


async def test_storage_uses_the_lean_client(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage()
    client = await _handle(storage)
    assert isinstance(client, LeanS3Client)
    await storage.put("chunks/a", b"1")
    assert await storage.get("chunks/a") == b"1"
    assert client._full is None  # no aiobotocore client for get/put/head
    assert [info.key async for info in storage.list("")] == ["chunks/a"]
    assert client._full is not None  # listing went to aiobotocore
    await storage.delete(["chunks/a"])
    assert not await storage.exists("chunks/a")
    await storage.close()


async def test_conditional_puts_map_to_the_same_errors(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage()
    client = await _handle(storage)
    key = f"{storage.prefix}/repo"
    v1 = (await client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"1", IfNoneMatch="*"))["ETag"]
    with pytest.raises(S3ResponseError) as info:
        await client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"2", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"
    assert storage._classify(info.value) is FailureKind.PRECONDITION
    with pytest.raises(S3ResponseError):
        await client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"2", IfMatch='"nope"')
    v2 = (await client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"2", IfMatch=v1))["ETag"]
    assert v2 != v1
    # through the storage: the typed errors
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_absent("repo", b"3")
    with pytest.raises(PreconditionFailedError):
        await storage.put_if_version("repo", b"3", v1)
    v3 = await storage.put_if_version("repo", b"3", v2)
    assert await storage.get_with_version("repo") == (b"3", v3)
    with pytest.raises(ObjectNotFoundError):
        await storage.get("missing")
    with pytest.raises(ObjectNotFoundError):
        await storage.get_with_version("missing")
    assert not await storage.exists("missing")
    assert await storage.exists("repo")
    await storage.close()


async def test_range_reads(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage()
    data = bytes(range(256)) * 4
    await storage.put("chunks/r", data)
    assert await storage.get("chunks/r", ByteRange(10, 20)) == data[10:20]
    assert await storage.get("chunks/r", ByteRange(1000)) == data[1000:]
    assert await storage.get("chunks/r", ByteRange(suffix=7)) == data[-7:]
    assert await storage.get("chunks/r", ByteRange(suffix=5000)) == data
    assert await storage.get("chunks/r", ByteRange(1020, 5000)) == data[1020:]
    assert await storage.get("chunks/r", ByteRange(2000, 3000)) == b""  # past the end
    assert await storage.get("chunks/r", ByteRange(5, 5)) == b""
    client = await _handle(storage)
    got = await client.get_object(
        Bucket=S3_BUCKET, Key=f"{storage.prefix}/chunks/r", Range="bytes=-3"
    )
    assert await got["Body"].read() == data[-3:]
    assert got["ContentLength"] == 3
    await storage.close()


async def test_large_bodies(moto_s3: MotoS3) -> None:
    """Bodies of more than 8 MiB, one request each way (no multipart, no split reads)."""
    from icechunk.storage import StorageConcurrencySettings

    storage = moto_s3.storage().with_settings(
        StorageSettings(
            concurrency=StorageConcurrencySettings(ideal_concurrent_request_size=64 << 20)
        )
    )
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (9 << 20) + 12345, dtype=np.uint8).tobytes()
    await storage.put("chunks/big", big)
    assert await storage.get("chunks/big") == big
    assert (
        await storage.get("chunks/big", ByteRange(8 << 20, (8 << 20) + 100))
        == big[8 << 20 : (8 << 20) + 100]
    )
    version = await storage.put_if_absent("big-cond", big)
    assert await storage.get_with_version("big-cond") == (big, version)
    assert (await _handle(storage))._full is None
    await storage.close()


async def test_many_concurrent_requests(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage().with_settings(max_concurrent_requests=32)
    payloads = {f"chunks/{i}": os.urandom(1000 + i) for i in range(300)}
    await asyncio.gather(*(storage.put(k, v) for k, v in payloads.items()))
    got = await asyncio.gather(*(storage.get(k) for k in payloads))
    assert got == list(payloads.values())
    pool = (await _handle(storage))._pool
    assert len(pool._busy) == 0 and len(pool._idle) <= 16
    await storage.close()


async def test_keep_alive_pool_reuses_connections() -> None:
    async with RawServer() as server:
        client = _lean(server.url, max_idle=64)
        for _ in range(2):
            await asyncio.gather(
                *(client.put_object(Bucket=S3_BUCKET, Key=f"k{i}", Body=b"x") for i in range(40))
            )
        first = server.connections
        assert first <= 40
        await asyncio.gather(*(client.get_object(Bucket=S3_BUCKET, Key=f"k{i}") for i in range(10)))
        assert server.connections == first  # all from the idle pool
        assert len(server.seen) == 90
        # abandoned (the loop is going away, or a forked child): sockets closed directly
        idle = list(client._pool._idle)
        assert idle
        client.abandon(lambda _full: None)
        assert all(conn.transport._sock.fileno() == -1 for conn in idle)  # type: ignore[union-attr]
        await client.close()


# -- connections closed under the client ---------------------------------------------------


async def test_server_closing_idle_connections_is_survived() -> None:
    """The server closes every connection after answering (keep-alive announced anyway)."""
    async with RawServer(close_after_answer=True) as server:
        client = _lean(server.url)
        for i in range(5):
            await client.put_object(Bucket=S3_BUCKET, Key=f"k{i}", Body=b"x")
            await asyncio.sleep(0.02)  # the close arrives while the connection is idle
            got = await client.get_object(Bucket=S3_BUCKET, Key=f"k{i}")
            assert got["ETag"] == '"e1"'
            await asyncio.sleep(0.02)
        assert server.connections == 10
        await client.close()


@pytest.mark.parametrize(
    ("call", "resent"),
    [
        ("get", True),
        ("head", True),
        ("put", True),  # a plain PUT is idempotent
        ("put-if-absent", False),  # a conditional one is not: _remote decides
    ],
)
async def test_request_on_a_connection_the_server_just_closed(call: str, resent: bool) -> None:
    """The race: the request goes out on a reused connection the server is dropping."""
    async with RawServer([None, "drop"]) as server:
        client = _lean(server.url)
        await client.get_object(Bucket=S3_BUCKET, Key="warm-up")
        params: dict[str, Any] = {"Bucket": S3_BUCKET, "Key": "k"}
        method = {
            "get": client.get_object,
            "head": client.head_object,
            "put": client.put_object,
            "put-if-absent": client.put_object,
        }[call]
        if call.startswith("put"):
            params["Body"] = b"data"
        if call == "put-if-absent":
            params["IfNoneMatch"] = "*"
        if resent:
            assert (await method(**params))["ETag"] == '"e1"'
            assert len(server.seen) == 3 and server.connections == 2
        else:
            with pytest.raises(S3ConnectionError):
                await method(**params)
            assert len(server.seen) == 2
        await client.close()


async def test_broken_fresh_connections_are_retried_by_the_storage() -> None:
    async with RawServer(["drop", "drop", answer(200, b"abc", {"ETag": '"e9"'})]) as server:
        storage = _fast(
            _scripted_storage(server.url),
            tries=3,
        )
        assert await storage.get("chunks/x") == b"abc"
        assert len(server.seen) == 3
        assert server.seen[0].path == f"/{S3_BUCKET}/p/chunks/x"  # path style
        await storage.close()


# -- answer framing ------------------------------------------------------------------------


async def test_chunked_answers() -> None:
    chunked = [
        b'HTTP/1.1 200 OK\r\nETag: "c1"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel',
        b"lo\r\n",
        b"6;ext=1\r\n world\r\n",
        b"0\r\nx-amz-trailer: t\r\n\r\n",
    ]
    plain_chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    big = os.urandom(300_000)
    big_chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            f"{len(big[i : i + 70_000]):x}\r\n".encode() + big[i : i + 70_000] + b"\r\n"
            for i in range(0, len(big), 70_000)
        )
        + b"0\r\n\r\n"
    )
    async with RawServer([chunked, plain_chunked, big_chunked, None]) as server:
        client = _lean(server.url)
        got = await client.get_object(Bucket=S3_BUCKET, Key="a")
        assert await got["Body"].read() == b"hello world" and got["ETag"] == '"c1"'
        got = await client.get_object(Bucket=S3_BUCKET, Key="b")
        assert await got["Body"].read() == b"abc"
        got = await client.get_object(Bucket=S3_BUCKET, Key="c")
        assert await got["Body"].read() == big
        await client.get_object(Bucket=S3_BUCKET, Key="d")
        assert server.connections == 1  # chunked answers keep the connection usable
        await client.close()


async def test_answers_read_until_close_and_split_heads() -> None:
    eof = [b'HTTP/1.0 200 OK\r\nETag: "z"\r\n', b"\r\nall of ", b"it"]
    split = [b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 10\r\n\r\n01234", b"56789"]
    async with RawServer([eof, split]) as server:
        client = _lean(server.url)
        got = await client.get_object(Bucket=S3_BUCKET, Key="a")
        assert await got["Body"].read() == b"all of it"
        got = await client.get_object(Bucket=S3_BUCKET, Key="b")
        assert await got["Body"].read() == b"0123456789"
        assert server.connections == 2
        await client.close()


# -- errors ----------------------------------------------------------------------------------


async def test_error_xml_is_parsed() -> None:
    forbidden = answer(403, error_xml("AccessDenied", "Access &amp; more &lt;denied&gt;"))
    bad = answer(400, error_xml("InvalidArgument", "bad header"), {"x-amz-request-id": "r1"})
    async with RawServer([forbidden, bad, answer(404), answer(503)]) as server:
        client = _lean(server.url)
        with pytest.raises(S3ResponseError) as info:
            await client.get_object(Bucket=S3_BUCKET, Key="a")
        assert info.value.response["Error"] == {
            "Code": "AccessDenied",
            "Message": "Access & more <denied>",
        }
        assert "AccessDenied" in str(info.value) and "GetObject" in str(info.value)
        with pytest.raises(S3ResponseError) as info:
            await client.put_object(Bucket=S3_BUCKET, Key="a", Body=b"x")
        assert info.value.response["Error"]["Code"] == "InvalidArgument"
        assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"] == "r1"
        with pytest.raises(S3ResponseError) as info:  # HEAD: no body, the status is the code
            await client.head_object(Bucket=S3_BUCKET, Key="a")
        assert info.value.response["Error"]["Code"] == "404"
        with pytest.raises(S3ResponseError) as info:
            await client.get_object(Bucket=S3_BUCKET, Key="a")
        assert info.value.response["Error"]["Code"] == "503"
        assert server.connections == 1
        await client.close()


async def test_storage_errors_and_retries() -> None:
    slow_down = answer(503, error_xml("SlowDown", "easy"))
    actions = [
        answer(403, error_xml("AccessDenied", "no")),  # get: not retried
        slow_down,  # put: retried, then works
        None,
        answer(404, error_xml("NoSuchKey", "gone")),  # get: not found
        answer(404),  # head: not found
        slow_down,  # get: retried until the tries run out
        slow_down,
        slow_down,
        answer(404, error_xml("NoSuchBucket", "no bucket")),
    ]
    async with RawServer(actions) as server:
        storage = _fast(
            _scripted_storage(
                server.url,
                requester_pays=True,
                headers={"X-Extra": "both"},
                write_headers={"X-Write": "w"},
            ),
            tries=3,
        )
        with pytest.raises(StorageError, match="AccessDenied"):
            await storage.get("chunks/a")
        assert len(server.seen) == 1
        await storage.put("chunks/b", b"data")
        assert len(server.seen) == 3
        with pytest.raises(ObjectNotFoundError):
            await storage.get("chunks/c")
        assert not await storage.exists("chunks/c")
        with pytest.raises(StorageError, match="SlowDown"):
            await storage.get("chunks/d")
        assert len(server.seen) == 8
        with pytest.raises(StorageError, match="does not exist"):
            await storage.get("chunks/e")
        get, put = server.seen[0], server.seen[2]
        assert get.headers["x-amz-request-payer"] == "requester"
        assert get.headers["x-extra"] == "both" and "x-write" not in get.headers
        assert put.headers["x-write"] == "w" and put.headers["x-extra"] == "both"
        assert "x-extra" in put.headers["authorization"]  # extra headers are signed
        assert put.body == b"data"
        assert put.headers["x-amz-content-sha256"] == hashlib.sha256(b"data").hexdigest()
        await storage.close()


async def test_read_timeout() -> None:
    async with RawServer(["hang"]) as server:
        client = _lean(server.url, read_timeout=0.3)
        with pytest.raises(S3ReadTimeoutError):
            await client.get_object(Bucket=S3_BUCKET, Key="a")
        await client.close()
    async with RawServer(["hang", "hang", None]) as server:
        storage = _fast(
            _scripted_storage(server.url, anonymous=True),
            tries=2,
            read_timeout_ms=300,
        )
        with pytest.raises(StorageError):
            await storage.get("chunks/a")
        assert len(server.seen) == 2
        assert "authorization" not in server.seen[0].headers  # anonymous: unsigned
        await storage.close()


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"openssl cannot make a certificate: {err}")
    return cert, key


async def test_https_verifies_certificates(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with RawServer([None, None], ssl_context=context) as server:
        monkeypatch.setattr(_s3http, "_SSL_CONTEXT", None)
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        storage = _fast(_scripted_storage(server.url))
        with pytest.raises(StorageError, match="CERTIFICATE_VERIFY_FAILED"):
            await storage.get("chunks/a")  # a self-signed certificate: refused, not retried
        await storage.close()
        # trusted through AWS_CA_BUNDLE, as botocore would
        monkeypatch.setattr(_s3http, "_SSL_CONTEXT", None)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        storage = _scripted_storage(server.url)
        await storage.put("chunks/a", b"secret data")
        await storage.get("chunks/a")
        lean = await _handle(storage)
        (conn,) = lean._pool._idle
        lean.abandon(lambda _full: None)  # the TLS connection's socket is closed too
        assert conn.transport._ssl_protocol._transport._sock.fileno() == -1
        put = server.seen[0]
        assert put.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        crc = base64.b64encode(zlib.crc32(b"secret data").to_bytes(4, "big")).decode()
        assert put.headers["x-amz-checksum-crc32"] == crc
        await storage.close()
    monkeypatch.setattr(_s3http, "_SSL_CONTEXT", None)


# -- when the lean client is used, and the fallbacks -------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return monkeypatch


def test_lean_plan(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    creds = S3StaticCredentials("a", "b")
    custom = S3Options(region="eu-west-3", endpoint_url="https://minio.example.com:9000/base")
    assert _lean_plan(custom, "bkt", creds, False) == (
        "https://minio.example.com:9000/base",
        True,  # botocore uses path style for custom endpoints
        "eu-west-3",
        creds,
    )
    aws = S3Options(region="us-west-2")
    assert _lean_plan(aws, "bkt", creds, False) == (
        "https://s3.us-west-2.amazonaws.com",
        False,
        "us-west-2",
        creds,
    )
    assert _lean_plan(aws, "b.k.t", creds, False)[1] is True  # type: ignore[index]
    assert _lean_plan(S3Options(region="us-west-2", force_path_style=True), "bkt", creds, False)[1]  # type: ignore[index]
    assert _lean_plan(aws, "bkt", None, True) == (
        "https://s3.us-west-2.amazonaws.com",
        False,
        "us-west-2",
        None,
    )
    # no region: us-east-1 for custom endpoints (botocore's signing region), botocore for AWS
    no_region = S3Options(endpoint_url="http://127.0.0.1:9000", allow_http=True)
    assert _lean_plan(no_region, "bkt", creds, False)[2] == "us-east-1"  # type: ignore[index]
    assert _lean_plan(S3Options(), "bkt", creds, False) is None
    assert _lean_plan(S3Options(region="cn-north-1"), "bkt", creds, False) is None
    # FromEnv: the environment's key pair, else botocore's credential chain
    assert _lean_plan(aws, "bkt", None, False) is None
    clean_env.setenv("AWS_ACCESS_KEY_ID", "env-a")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "env-b")
    clean_env.setenv("AWS_SESSION_TOKEN", "env-t")
    plan = _lean_plan(aws, "bkt", None, False)
    assert plan is not None and plan[3] == S3StaticCredentials("env-a", "env-b", "env-t")
    clean_env.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert _lean_plan(S3Options(), "bkt", creds, False)[2] == "ap-south-1"  # type: ignore[index]
    # things botocore would take from the environment or a config file
    for name, value in [
        ("AWS_ENDPOINT_URL_S3", "http://elsewhere"),
        ("AWS_USE_FIPS_ENDPOINT", "true"),
        ("HTTPS_PROXY", "http://proxy:3128"),
    ]:
        with clean_env.context() as env:
            env.setenv(name, value)
            assert _lean_plan(aws, "bkt", creds, False) is None
    with clean_env.context() as env:
        env.setenv("HTTPS_PROXY", "http://proxy:3128")
        env.setenv("NO_PROXY", "minio.example.com")
        assert _lean_plan(custom, "bkt", creds, False) is not None
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-north-1\ns3 =\n    addressing_style = path\n")
    clean_env.setenv("AWS_CONFIG_FILE", str(config))
    assert _lean_plan(aws, "bkt", creds, False) is None
    config.write_text("[default]\nregion = eu-north-1\n")
    clean_env.delenv("AWS_DEFAULT_REGION")
    assert _lean_plan(no_region, "bkt", creds, False) is None  # botocore's region is eu-north-1
    assert _lean_plan(custom, "bkt", creds, False) is not None


def test_virtual_hosted_urls_match_botocore(clean_env: pytest.MonkeyPatch) -> None:
    """Where our requests would go, for AWS endpoints, is where botocore sends them."""
    import botocore.session

    for bucket, region in [("bkt", "us-west-2"), ("b.k.t", "eu-central-1")]:
        storage = s3_storage(
            bucket=bucket, prefix="p", region=region, access_key_id="a", secret_access_key="b"
        )
        plan = _lean_plan(storage.options, bucket, S3Credentials.Static, False)  # type: ignore[arg-type]
        assert plan is not None
        lean = _lean(plan[0], bucket=bucket, path_style=plan[1])
        ours = lean._url_base + lean._prefix + "p/a%20b"
        client = botocore.session.get_session().create_client(
            "s3", region_name=region, aws_access_key_id="a", aws_secret_access_key="b"
        )
        seen: list[str] = []

        def stop(request: Any, seen: list[str] = seen, **_: Any) -> None:
            seen.append(request.url)
            raise RuntimeError("not sent")

        client.meta.events.register("before-send.s3.GetObject", stop)
        with contextlib.suppress(RuntimeError):
            client.get_object(Bucket=bucket, Key="p/a b")
        assert seen == [ours]


async def test_unusual_credentials_fall_back_to_aiobotocore(
    moto_s3: MotoS3, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """FromEnv with credentials only in a profile file: botocore finds them, we do not."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {S3_ACCESS_KEY}\naws_secret_access_key = {S3_SECRET_KEY}\n"
    )
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    kwargs = moto_s3.storage_kwargs()
    del kwargs["access_key_id"], kwargs["secret_access_key"]
    storage = s3_storage(**kwargs, from_env=True)
    client = await _handle(storage)
    assert not isinstance(client, LeanS3Client)
    await storage.put("chunks/a", b"via botocore")
    assert await storage.get("chunks/a") == b"via botocore"
    await storage.close()
    # the same with the key pair in the environment: lean
    clean_env.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    storage = s3_storage(**kwargs, from_env=True)
    assert isinstance(await _handle(storage), LeanS3Client)
    assert await storage.get("chunks/a") == b"via botocore"
    await storage.close()


async def test_requests_the_lean_client_cannot_make_are_delegated(moto_s3: MotoS3) -> None:
    storage = moto_s3.storage()
    client = await _handle(storage)
    key = f"{storage.prefix}/meta"
    await client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"m", Metadata={"a": "b"})
    assert client._full is not None
    head = moto_s3.client().head_object(Bucket=S3_BUCKET, Key=key)
    assert head["Metadata"] == {"a": "b"}
    await storage.close()


class _FakeFull:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

        class _Events:
            def register(self, *a: Any, **k: Any) -> None:
                pass

        class _Meta:
            events = _Events()

        self.meta = _Meta()

    async def get_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("get_object", params))
        return {"from": "full"}

    async def put_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("put_object", params))
        return {"from": "full"}

    async def close(self) -> None:
        pass


async def test_region_redirects_and_unsupported_checksums_go_to_the_full_client() -> None:
    moved = answer(301, error_xml("PermanentRedirect", "elsewhere"), {"x-amz-bucket-region": "x"})
    wrong_region = answer(
        400, error_xml("AuthorizationHeaderMalformed", "region"), {"x-amz-bucket-region": "eu-x-1"}
    )
    async with RawServer([moved, wrong_region]) as server:
        full = _FakeFull()
        client = _lean(server.url, full=full)
        assert await client.get_object(Bucket=S3_BUCKET, Key="a") == {"from": "full"}
        assert await client.put_object(Bucket=S3_BUCKET, Key="a", Body=b"x") == {"from": "full"}
        assert await client.put_object(
            Bucket=S3_BUCKET, Key="b", Body=b"x", ChecksumAlgorithm="CRC32C"
        ) == {"from": "full"}
        assert [c[0] for c in full.calls] == ["get_object", "put_object", "put_object"]
        assert len(server.seen) == 2  # the CRC32C one never reached the server from here
        await client.close()


async def test_checksum_option_is_sent(moto_s3: MotoS3) -> None:
    from icechunk.storage.s3 import ChecksumAlgorithm, S3Storage

    kwargs = moto_s3.storage_kwargs()
    storage = S3Storage(
        bucket=kwargs["bucket"],
        prefix=kwargs["prefix"],
        options=S3Options(
            region=S3_REGION,
            endpoint_url=moto_s3.url,
            allow_http=True,
            force_path_style=True,
            checksum_algorithm=ChecksumAlgorithm.Sha256,
        ),
        credentials=S3Credentials.Static(S3StaticCredentials(S3_ACCESS_KEY, S3_SECRET_KEY)),
    )
    client = await _handle(storage)
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    await storage.put("chunks/a", b"checked")  # moto verifies the checksum
    assert "x-amz-checksum-sha256" in sent[0]
    assert await storage.get("chunks/a") == b"checked"
    await storage.close()


async def test_refreshed_credentials_rebuild_the_lean_client(moto_s3: MotoS3) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.unit.storage import test_storage_s3

    kwargs = moto_s3.storage_kwargs()
    del kwargs["access_key_id"], kwargs["secret_access_key"]
    storage = s3_storage(**kwargs, get_credentials=test_storage_s3._short_lived_credentials)
    await storage.put("chunks/a", b"1")
    handle = await storage._client_handle(storage._loop_state())
    assert isinstance(handle.client, LeanS3Client)
    assert handle.expires_at is not None
    assert handle.expires_at < datetime.now(UTC) + timedelta(seconds=31)
    await asyncio.sleep(0.4)
    assert await storage.get("chunks/a") == b"1"
    fresh = await storage._client_handle(storage._loop_state())
    assert fresh is not handle and isinstance(fresh.client, LeanS3Client)
    await storage.close()
