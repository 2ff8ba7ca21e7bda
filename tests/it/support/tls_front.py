"""Amazon MQ's AMQPS front, for the boot-path test (tests/it/boot.rs).

Amazon MQ for RabbitMQ only speaks AMQPS (5671); each shop instance runs an
stunnel client that verifies the broker's certificate and host name. This
stand-in terminates TLS with a certificate the test's own CA signed and
forwards the bytes to a real RabbitMQ's plain AMQP port.

    python3 tls_front.py LISTEN_HOST LISTEN_PORT TO_HOST TO_PORT CERT KEY
"""

import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main():
    listen_host, listen_port, to_host, to_port, cert, key = sys.argv[1:7]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(to_host, int(to_port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, listen_host, int(listen_port), ssl=context)
    print(f"listening on {listen_host}:{listen_port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
