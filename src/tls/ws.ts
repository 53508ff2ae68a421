/**
 * The WebSocket listeners of a worker (uWS): the shared port and the worker's own
 * resume port, on one App, or one SSLApp when tls.cert is set.
 *
 * uWS facts that shape this (uws-js-unofficial 20.30, shared/design.md):
 * - An SSLApp's session-ticket keys are made by OpenSSL when the app is built, per
 *   process, and cannot be set or read: a ticket resumes only on the worker that made
 *   it. Both ports of a worker share the app, hence one ticket key, so WELCOME's
 *   resume_endpoint (this worker's resume port) is where a device resumes.
 * - An SSLApp cannot swap its certificate (addServerName only adds SNI names, and
 *   devices dialling an IP send no SNI). A new certificate therefore means a new SSLApp
 *   listening on the same ports (SO_REUSEPORT) before the old app's listen sockets
 *   close: new handshakes get the new certificate, live connections stay on the old
 *   app untouched. The cost, said plainly: tickets made before the swap do not resume
 *   after it (new app, new ticket keys), so each device does one full handshake.
 * - ssl_prefer_low_memory_usage is SSL_MODE_RELEASE_BUFFERS. This uWS.js links its own
 *   BoringSSL, where an idle connection holds no record buffers with or without it
 *   (bench idle: ~3.3 KB per TLS connection either way; docs/memory.md). Kept on for
 *   builds linked against OpenSSL, where it is what frees idle buffers.
 */
import type { Logger } from 'pino';
import { ApiError } from '../api/errors';
import { begin, replyError } from '../api/http';
import { attachDictRoute } from '../compression/http';
import type { Config } from '../config/types';
import type { Gateway } from '../gateway/gateway';
import { attachWebSocket } from '../gateway/transport-ws';
import { type UwsApp, type us_listen_socket, uws } from '../util/uws';
import type { PemPair } from './pem';

export interface WsListeners {
  /** Stop accepting (drain); live connections stay. */
  close(): void;
  /** A new certificate (TLS only): true if it differed and is now in use; throws if it cannot be used. */
  reload(pem: PemPair): boolean;
}

interface Generation {
  app: UwsApp;
  sockets: us_listen_socket[];
  fingerprint: string;
}

function buildApp(gw: Gateway, config: Config, pem: PemPair | null): UwsApp {
  let app: UwsApp;
  if (pem === null) app = uws.App();
  else {
    try {
      app = uws.SSLApp({ cert_file_name: pem.certFile, key_file_name: pem.keyFile, ssl_prefer_low_memory_usage: true });
    } catch (err) {
      throw new Error(`uWebSockets.js could not use tls.cert ${pem.certFile} with tls.key ${pem.keyFile}: ${(err as Error).message}`);
    }
  }
  attachWebSocket(gw, app, config.ws.path);
  // dict_url points here: devices reach this listener, not the API (127.0.0.1 by default).
  attachDictRoute(app, (id) => gw.compression.dictBytes(id), gw.deps.log);
  app.any('/*', (res, req) => {
    const x = begin(res, req.getCaseSensitiveMethod() === 'HEAD');
    replyError(x, new ApiError('NOT_FOUND', `no such path; the moor/1 WebSocket endpoint is ${config.ws.path} (subprotocol moor.v1), dictionaries are at /v1/dicts/{id}`));
  });
  return app;
}

/** uWS calls the listen callback synchronously. */
function listenAll(app: UwsApp, host: string, ports: number[]): us_listen_socket[] {
  const sockets: us_listen_socket[] = [];
  for (const port of ports) {
    let sock: us_listen_socket | false = false;
    app.listen(host, port, (s) => {
      sock = s;
    });
    if (!sock) {
      for (const s of sockets) uws.us_listen_socket_close(s);
      throw new Error(`cannot listen on ${host}:${port}`);
    }
    sockets.push(sock);
  }
  return sockets;
}

export function openWebSocketListeners(gw: Gateway, config: Config, ports: number[], pem: PemPair | null, log: Logger): WsListeners {
  const first = buildApp(gw, config, pem);
  let live: Generation = { app: first, sockets: listenAll(first, config.ws.host, ports), fingerprint: pem?.fingerprint ?? '' };
  /** Every app that may still hold connections: topic publishes reach them all. */
  const apps: UwsApp[] = [first];
  let closed = false;
  return {
    close() {
      closed = true;
      for (const s of live.sockets) uws.us_listen_socket_close(s);
      live.sockets = [];
    },
    reload(next) {
      if (pem === null) throw new Error('TLS cannot be turned on without a restart');
      if (closed || next.fingerprint === live.fingerprint) return false;
      const app = buildApp(gw, config, next);
      const sockets = listenAll(app, config.ws.host, ports);
      for (const s of live.sockets) uws.us_listen_socket_close(s);
      live = { app, sockets, fingerprint: next.fingerprint };
      apps.push(app);
      // attachWebSocket pointed gw.publish at the new app only; the old one's subscribers count too.
      gw.publish = (topic, frame) => {
        let n = 0;
        for (const a of apps) {
          const k = a.numSubscribers(topic);
          if (k > 0) {
            a.publish(topic, frame, true, false);
            n += k;
          }
        }
        return n;
      };
      log.info({ ports, apps: apps.length }, 'websocket listeners now use the new certificate; live connections keep the old one');
      return true;
    },
  };
}
