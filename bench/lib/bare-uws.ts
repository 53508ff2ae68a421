/**
 * The baseline of `bench idle`: a bare uWebSockets.js echo server, loaded through the
 * gateway's own loader and configured like the gateway's WebSocket listener where it
 * matters for memory (idleTimeout 0, no compression, same payload and backpressure
 * limits, no automatic pings). No user data beyond uWS's default, no subscriptions.
 *
 * With a certificate and key it is an SSLApp, as the gateway's TLS listener builds it
 * (src/tls/ws.ts: the same two options), so `bench idle` can hold TLS sessions on both.
 * MOOR_BENCH_TLS_KEEP_BUFFERS=1 leaves ssl_prefer_low_memory_usage off (to measure it).
 *
 * `node dist/bench/lib/bare-uws.js [host] [cert.pem key.pem]`: prints one JSON line
 * {"port","pid"} on stdout once listening; exits on SIGTERM/SIGINT or when stdin closes.
 */
import { DEFAULT_MAX_FRAME, MAX_HEADER_BYTES } from '../../src/protocol/constants';
import { uws } from '../../src/util/uws';

/** As in src/gateway/transport-ws.ts: max_frame + header + 64 KiB slack; the default max_buffered. */
const MAX_PAYLOAD = DEFAULT_MAX_FRAME + MAX_HEADER_BYTES + 64 * 1024;
const MAX_BACKPRESSURE = 262_144;

function main(): void {
  const [host = '127.0.0.1', cert, key] = process.argv.slice(2);
  const lowMemory = process.env.MOOR_BENCH_TLS_KEEP_BUFFERS !== '1';
  const app = cert && key ? uws.SSLApp({ cert_file_name: cert, key_file_name: key, ssl_prefer_low_memory_usage: lowMemory }) : uws.App();
  app.ws('/*', {
    compression: uws.DISABLED,
    maxPayloadLength: MAX_PAYLOAD,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    maxBackpressure: MAX_BACKPRESSURE,
    closeOnBackpressureLimit: 0,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary, false);
    },
  });
  app.listen(host, 0, (sock) => {
    if (!sock) {
      process.stderr.write(`bare-uws: cannot listen on ${host}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify({ port: uws.us_socket_local_port(sock), pid: process.pid })}\n`);
  });
  const quit = (): void => {
    app.close();
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  process.stdin.on('end', quit);
  process.stdin.resume();
}

main();
