/**
 * The soak's baseline server: bench/lib/bare-uws.ts's bare uWebSockets.js echo server
 * (same loader, same WebSocket settings), plus what a fan-out baseline needs: every
 * connection subscribes to one topic on open, and a `pub TEXT` line on stdin
 * publishes TEXT to it — from a libuv callback, not a uWS handler, as the gateway
 * does (design.md: publish inside a handler is 14x slower). Several of these listen
 * on one port (uWS sets SO_REUSEPORT), like the gateway's workers.
 *
 * `node dist/bench/soak/bare-pub.js HOST PORT [CERT KEY]` (PORT 0 = any; with CERT and
 * KEY it speaks TLS through uWS SSLApp, low-memory mode as the gateway): prints {"port","pid"}
 * once listening, then answers stdin lines with one JSON line each:
 *   stats      -> {"t":"stats","conns":N}
 *   pub TEXT   -> {"t":"pub","n":subscribers,"us":microseconds the publish call took}
 * Exits on SIGTERM/SIGINT or when stdin closes.
 */

import { DEFAULT_MAX_FRAME, MAX_HEADER_BYTES } from '../../src/protocol/constants';
import { uws } from '../../src/util/uws';
import { onStdinLines } from '../lib/stdin-lines';

/** As in bench/lib/bare-uws.ts (and src/gateway/transport-ws.ts). */
const MAX_PAYLOAD = DEFAULT_MAX_FRAME + MAX_HEADER_BYTES + 64 * 1024;
const MAX_BACKPRESSURE = 262_144;
const TOPIC = 'all';

function main(): void {
  const host = process.argv[2] ?? '127.0.0.1';
  const port = Number(process.argv[3] ?? 0);
  const [cert, key] = process.argv.slice(4);
  let conns = 0;
  const app = cert && key ? uws.SSLApp({ cert_file_name: cert, key_file_name: key, ssl_prefer_low_memory_usage: true }) : uws.App();
  app.ws('/*', {
    compression: uws.DISABLED,
    maxPayloadLength: MAX_PAYLOAD,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    maxBackpressure: MAX_BACKPRESSURE,
    closeOnBackpressureLimit: 0,
    open: (ws) => {
      conns++;
      ws.subscribe(TOPIC);
    },
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary, false);
    },
    close: () => {
      conns--;
    },
  });
  app.listen(host, port, (sock) => {
    if (!sock) {
      process.stderr.write(`bare-pub: cannot listen on ${host}:${port}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify({ port: uws.us_socket_local_port(sock), pid: process.pid })}\n`);
  });
  onStdinLines((line) => {
    if (line === 'stats') process.stdout.write(`${JSON.stringify({ t: 'stats', conns })}\n`);
    else if (line.startsWith('pub ')) {
      const msg = Buffer.from(line.slice(4));
      const n = app.numSubscribers(TOPIC);
      const t0 = process.hrtime.bigint();
      app.publish(TOPIC, msg, true, false);
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      process.stdout.write(`${JSON.stringify({ t: 'pub', n, us })}\n`);
    }
  });
  const quit = (): void => {
    app.close();
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  process.stdin.on('end', quit);
}

main();
