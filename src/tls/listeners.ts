/**
 * A worker's device listeners, plain or TLS: WebSocket (uWS, ws.ts) on the shared port
 * and the worker's resume port, raw TCP (node:net, or node:tls through tcp.ts) on the
 * cluster-shared port. With TLS the raw TCP ticket keys come from the primary
 * (worker-keys.ts), and SIGHUP (the live-config message, cluster/live.ts) re-reads the
 * certificate: both listeners use it for new handshakes, live connections keep theirs.
 * Raw TCP TLS handshakes are counted in /metrics (metrics.ts).
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { onConfigReload } from '../cluster/live';
import type { Config } from '../config/types';
import type { Gateway } from '../gateway/gateway';
import { acceptTcp, createTcpServer } from '../gateway/transport-tcp';
import { registerTlsMetrics } from './metrics';
import { type PemPair, readPemPair } from './pem';
import { TlsTcpFront } from './tcp';
import { onTicketKeys, requestTicketKeys } from './worker-keys';
import { openWebSocketListeners } from './ws';

export interface DeviceListeners {
  /** The raw TCP server (null when tcp.port is 0). */
  tcp: net.Server | null;
  /** The TLS front of raw TCP, for its counters (null without TLS). */
  tlsTcp: TlsTcpFront | null;
  /** Stop accepting devices (drain); connected ones stay. */
  close(): void;
}

export async function openDeviceListeners(gw: Gateway, config: Config, wsPorts: number[], log: Logger): Promise<DeviceListeners> {
  const secure = config.tls.cert !== '';
  let pem: PemPair | null = secure ? readPemPair(config.tls.cert, config.tls.key) : null;
  const ws = openWebSocketListeners(gw, config, wsPorts, pem, log);

  let tcp: net.Server | null = null;
  let front: TlsTcpFront | null = null;
  const unsubscribe: Array<() => void> = [];
  if (config.tcp.port > 0) {
    if (pem !== null) {
      front = new TlsTcpFront({
        pem,
        keys: await requestTicketKeys(),
        rotateS: config.tls.ticket_rotate_s,
        handshakeTimeoutMs: () => config.limits.handshake_timeout_ms,
        log,
        secure: (sock) => acceptTcp(gw, sock),
      });
      const f = front;
      registerTlsMetrics(f.stats);
      unsubscribe.push(onTicketKeys((keys) => f.setKeys(keys)));
      tcp = front.server;
    } else {
      tcp = createTcpServer(gw);
    }
    const server = tcp;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: config.tcp.port, host: config.tcp.host, backlog: 4096 }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  }

  if (secure) {
    unsubscribe.push(
      onConfigReload((changed, cfg) => {
        if (!changed.includes('tls.cert') && !changed.includes('tls.key')) return;
        if (cfg.tls.cert === '') throw new Error('tls.cert was unset: TLS cannot be turned off without a restart; keeping the certificate in use');
        // Throws (the worker logs it) when the new pair is unusable: the old one stays.
        const next = readPemPair(cfg.tls.cert, cfg.tls.key);
        if (pem !== null && next.fingerprint === pem.fingerprint) return;
        const wsChanged = ws.reload(next);
        const tcpChanged = front?.setPem(next) ?? false;
        pem = next;
        log.info({ cert: next.certFile, ws: wsChanged, tcp: tcpChanged }, 'tls certificate reloaded: new handshakes use it, live connections keep theirs');
      }),
    );
  } else {
    unsubscribe.push(
      onConfigReload((changed, cfg) => {
        if (changed.includes('tls.cert') && cfg.tls.cert !== '') throw new Error('tls.cert was set: TLS cannot be turned on without a restart');
      }),
    );
  }

  return {
    tcp,
    tlsTcp: front,
    close() {
      for (const off of unsubscribe.splice(0)) off();
      ws.close();
      tcp?.close();
    },
  };
}
