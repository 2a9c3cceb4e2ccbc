"""A TLS stream for DICOM's bulk transfers: ssl.SSLObject over memory BIOs on a trio
stream, reading in large gulps.

trio.SSLStream hands out at most one TLS record (16 KiB) per `receive_some`, and every
call pays trio's retry machinery; a 512 KiB image is then 32 trips through the DICOM
link's read loop. Here one `receive_some` reads what the socket has (up to 256 KiB),
decrypts every whole record in it in a tight loop and returns all of it: measured on
the C-STORE path, that is most of what TLS cost (bench/security_overhead.py).

Only the standard library's public SSLObject API. Renegotiation is off (client/tls.py),
so reading never needs to write except to answer TLS 1.3 post-handshake messages (key
updates, tickets), which the outgoing BIO collects and the next send or read flushes.
Sends and those flushes share one lock: the transport sees records in order.
"""

from __future__ import annotations

import ssl

import trio

TRANSPORT_READ = 256 * 1024


class TlsStream(trio.abc.Stream):
    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None) -> None:
        self.transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname)
        self._send_lock = trio.Lock()
        self._eof = False

    @property
    def socket(self):
        return self.transport.socket

    def getpeercert(self) -> dict | None:
        return self._ssl.getpeercert()

    async def do_handshake(self) -> None:
        while True:
            try:
                self._ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise trio.BrokenResourceError("the peer closed the connection during the TLS handshake") from None
            except ssl.SSLError as error:
                await self._flush_quietly()  # the alert, so the peer learns why
                raise trio.BrokenResourceError(error) from error
        await self._flush()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or TRANSPORT_READ
        while True:
            data = self._decrypt(limit)
            if data or self._eof:
                if self._outgoing.pending:
                    await self._flush()
                return data
            await self._flush()
            if not await self._fill():
                self._eof = True  # the peer closed without close_notify: an end all the same

    def _decrypt(self, limit: int) -> bytes:
        """Every plaintext byte the buffered records hold, up to `limit`."""
        chunks, size = [], 0
        while size < limit:
            try:
                chunk = self._ssl.read(limit - size)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify
                self._eof = True
                break
            except ssl.SSLError as error:
                raise trio.BrokenResourceError(error) from error
            if not chunk:
                self._eof = True
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    async def _fill(self) -> bool:
        """Read from the transport into the incoming BIO; False at its end."""
        data = await self.transport.receive_some(TRANSPORT_READ)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self._ssl.write(data)
        except ssl.SSLError as error:
            raise trio.BrokenResourceError(error) from error
        await self._flush()

    async def _flush(self) -> None:
        async with self._send_lock:
            pending = self._outgoing.read()
            if pending:
                await self.transport.send_all(pending)

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Send close_notify (without waiting for the peer's), then close the transport."""
        try:
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                try:
                    self._ssl.unwrap()
                except (ssl.SSLWantReadError, ssl.SSLError):
                    pass
                await self._flush_quietly()
        finally:
            await self.transport.aclose()
