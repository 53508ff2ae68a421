/**
 * TLS metrics (`moor_tls_*`) on the worker's registry, read from the raw TCP front's
 * counters at scrape time (nothing added to the handshake path). Raw TCP only: node:tls
 * says whether a handshake resumed (`isSessionReused()`), uWS.js (WebSocket) exposes
 * nothing of its TLS handshakes to JavaScript, so WebSocket TLS is not counted here.
 */
import { Counter, type Registry } from 'prom-client';
import { getMetrics, METRICS_PREFIX } from '../metrics/registry';
import type { TlsTcpStats } from './tcp';

/** Registers the raw TCP TLS counters of `stats` (one front per worker). */
export function registerTlsMetrics(stats: TlsTcpStats, registry: Registry = getMetrics().registry): void {
  const p = METRICS_PREFIX;
  const registers = [registry];
  // A second front in the same process (tests) replaces the first one's counters.
  for (const n of ['tls_handshakes_total', 'tls_resumed_previous_key_total', 'tls_rejected_total']) registry.removeSingleMetric(`${p}${n}`);
  new Counter({
    name: `${p}tls_handshakes_total`,
    help: 'Completed TLS handshakes, full (resumed="false") or resumed from a session ticket; raw TCP only (uWS exposes no TLS handshake to JavaScript)',
    labelNames: ['transport', 'resumed'],
    registers,
    collect() {
      this.reset();
      this.inc({ transport: 'tcp', resumed: 'false' }, stats.full);
      this.inc({ transport: 'tcp', resumed: 'true' }, stats.resumed);
    },
  });
  new Counter({
    name: `${p}tls_resumed_previous_key_total`,
    help: 'Raw TCP connections whose ticket was made with the previous ticket key (handed to its context)',
    labelNames: ['transport'],
    registers,
    collect() {
      this.reset();
      this.inc({ transport: 'tcp' }, stats.previousKey);
    },
  });
  new Counter({
    name: `${p}tls_rejected_total`,
    help: 'Connections closed before a TLS session: plaintext on a TLS port, or a failed or stalled handshake; raw TCP only',
    labelNames: ['transport', 'reason'],
    registers,
    collect() {
      this.reset();
      this.inc({ transport: 'tcp', reason: 'plaintext' }, stats.plaintext);
      this.inc({ transport: 'tcp', reason: 'handshake' }, stats.failed);
    },
  });
}
