/**
 * A loopback TCP relay that counts the bytes going each way: what a connection puts on
 * the wire (TCP payload, headers not included), TLS records and all, without touching
 * the client or the server. Used one connection at a time (the counters are the relay's).
 */
import net from 'node:net';

export class ByteRelay {
  /** Bytes client → server and server → client since the last reset(). */
  up = 0;
  down = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer({ noDelay: true }, (client) => {
      const upstream = net.connect({ port: this.targetPort, host: '127.0.0.1', noDelay: true });
      this.sockets.add(client).add(upstream);
      client.on('data', (d: Buffer) => {
        this.up += d.length;
        upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        this.down += d.length;
        client.write(d);
      });
      client.on('end', () => upstream.end());
      upstream.on('end', () => client.end());
      const gone = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', gone).on('error', gone);
      upstream.on('close', gone).on('error', gone);
    });
  }

  static async to(targetPort: number): Promise<ByteRelay> {
    const r = new ByteRelay(targetPort);
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    return r;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  reset(): void {
    this.up = 0;
    this.down = 0;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}
