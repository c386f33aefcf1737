#!/usr/bin/env python3
"""A Unix-socket relay in front of the Docker engine that logs every HTTP request it forwards.

    python3 bench/docker-relay.py --listen /tmp/x/docker.sock --log /tmp/x/requests.log \
        [--upstream /var/run/docker.sock]

Point a client at it with DOCKER_HOST=unix:///tmp/x/docker.sock (or skiff's --docker-host). Every request is
written to the log, one line each, as soon as its request line and headers have arrived (before the engine sees
it): "<epoch seconds, 6 decimals>\t<connection number>\t<METHOD>\t<target, URL-decoded>". The clock is the same
wall clock as bash's $EPOCHREALTIME and Python's time.time(), so a benchmark compares its own timestamps with the
log's. Bytes are forwarded unchanged both ways; after a connection upgrade (attach, exec start) the relay stops
parsing that connection and only copies. The relay adds one local hop (tens of microseconds per request).

Used by bench/change-latency (the first Docker call a resource change causes) and bench/stacks (list calls per
resync). Ends on SIGTERM or SIGINT and removes its socket.
"""
import argparse
import asyncio
import os
import re
import signal
import sys
import time
import urllib.parse

BUFFER = 65536
HEADERS_END = re.compile(rb"\r?\n\r?\n")


class RequestParser:
    """Finds request boundaries in one connection's client-to-engine byte stream (keep-alive, pipelining, chunked)."""

    def __init__(self, on_request):
        self.on_request = on_request
        self.buffer = b""
        self.state = "headers"  # headers | body | chunk-size | chunk-data | chunk-end | chunk-trailer | raw
        self.remaining = 0

    def feed(self, data):
        if self.state == "raw":
            return
        self.buffer += data
        while self.buffer and self.state != "raw":
            if self.state == "headers":
                # Docker.DotNet ends its header lines with a bare LF ("Host: x\n"), so either ending counts.
                match = HEADERS_END.search(self.buffer)
                if match is None:
                    return
                head, self.buffer = self.buffer[:match.start()].decode("latin-1"), self.buffer[match.end():]
                lines = [line.rstrip("\r") for line in head.split("\n")]
                parts = lines[0].split(" ")
                if len(parts) < 2:
                    self.state = "raw"  # not HTTP any more: just copy
                    return
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.on_request(parts[0], urllib.parse.unquote(parts[1]))
                upgrade = "upgrade" in headers.get("connection", "").lower() or "upgrade" in headers
                path = parts[1].split("?")[0]
                hijacked = path.endswith("/attach") or ("/exec/" in path and path.endswith("/start"))
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.state = "chunk-size"
                elif int(headers.get("content-length", "0") or 0) > 0:
                    self.state, self.remaining = "body", int(headers["content-length"])
                if upgrade or hijacked:
                    self.state = "raw"
            elif self.state == "body":
                take = min(self.remaining, len(self.buffer))
                self.buffer, self.remaining = self.buffer[take:], self.remaining - take
                if self.remaining == 0:
                    self.state = "headers"
            elif self.state in ("chunk-size", "chunk-end", "chunk-trailer"):
                end = self.buffer.find(b"\n")
                if end < 0:
                    return
                line, self.buffer = self.buffer[:end].rstrip(b"\r"), self.buffer[end + 1:]
                if self.state == "chunk-size":
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    self.state, self.remaining = ("chunk-trailer", 0) if size == 0 else ("chunk-data", size)
                elif self.state == "chunk-end":
                    self.state = "chunk-size"
                elif not line:
                    self.state = "headers"
            elif self.state == "chunk-data":
                take = min(self.remaining, len(self.buffer))
                self.buffer, self.remaining = self.buffer[take:], self.remaining - take
                if self.remaining == 0:
                    self.state = "chunk-end"

async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", default="/var/run/docker.sock")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    log = open(args.log, "a", buffering=1)
    connections = 0

    async def pipe(reader, writer, parser=None):
        try:
            while True:
                data = await reader.read(BUFFER)
                if not data:
                    break
                if parser is not None:
                    parser.feed(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                if writer.can_write_eof():
                    writer.write_eof()
            except (OSError, RuntimeError):
                pass

    # Strong references to the connections' tasks: asyncio keeps only weak ones, and a task collected while its
    # connection is still open would drop it.
    tasks = set()

    async def serve(client_reader, client_writer):
        task = asyncio.current_task()
        tasks.add(task)
        try:
            await relay(client_reader, client_writer)
        finally:
            tasks.discard(task)

    async def relay(client_reader, client_writer):
        nonlocal connections
        connections += 1
        number = connections
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(args.upstream)
        except OSError as e:
            print(f"docker-relay: cannot reach {args.upstream}: {e}", file=sys.stderr)
            client_writer.close()
            return

        def on_request(method, target):
            log.write(f"{time.time():.6f}\t{number}\t{method}\t{target}\n")

        await asyncio.gather(
            pipe(client_reader, engine_writer, RequestParser(on_request)),
            pipe(engine_reader, client_writer))
        for w in (engine_writer, client_writer):
            w.close()

    if os.path.exists(args.listen):
        os.unlink(args.listen)
    server = await asyncio.start_unix_server(serve, path=args.listen, limit=BUFFER)
    os.chmod(args.listen, 0o660)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    try:
        os.unlink(args.listen)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
