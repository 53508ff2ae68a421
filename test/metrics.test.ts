/**
 * The metrics registry, and /metrics aggregation over a real node:cluster: this file
 * forks itself as the workers (cluster.isWorker branch at the bottom).
 */
import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { describe, test } from 'node:test';
import type { GatewayMetrics } from '../src/gateway/deps';
import { installPrimaryMetricsResponder, installWorkerMetrics, requestClusterMetrics } from '../src/metrics/cluster';
import { Metrics } from '../src/metrics/registry';
import { ErrorCode, FrameType } from '../src/protocol/constants';

/** The value of one sample line, e.g. `moor_frames_in_total{type="PING"}`. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

function runTests(): void {
  describe('Metrics', () => {
    test('fits the gateway interface', () => {
      const m: GatewayMetrics = new Metrics({ defaultMetrics: false });
      assert.ok(m);
    });

    test('hot-path updates appear in the text with the moor_ prefix', async () => {
      const m = new Metrics({ defaultMetrics: false });
      m.connOpened(0);
      m.connOpened(0);
      m.connOpened(1);
      m.connClosed(0);
      m.handshake('ok');
      m.handshake('auth_failed');
      m.handshake('auth_failed');
      m.frameIn(FrameType.PING, 4);
      m.frameIn(FrameType.PING, 4);
      m.frameIn(0x7f, 10);
      m.frameOut(FrameType.PUSH, 100);
      m.pushesAccepted(3);
      m.pushDelivered(20);
      m.pushDelivered(1500);
      m.pushesAcked(2);
      m.error(ErrorCode.REPLACED);
      m.error(99);
      m.setInboxDepth(17);
      const t = await m.text();
      assert.equal(sample(t, 'moor_connections{transport="ws"}'), 1);
      assert.equal(sample(t, 'moor_connections{transport="tcp"}'), 1);
      assert.equal(sample(t, 'moor_handshakes_total{result="ok"}'), 1);
      assert.equal(sample(t, 'moor_handshakes_total{result="auth_failed"}'), 2);
      assert.equal(sample(t, 'moor_handshakes_total{result="timeout"}'), 0);
      assert.equal(sample(t, 'moor_frames_in_total{type="PING"}'), 2);
      assert.equal(sample(t, 'moor_bytes_in_total{type="PING"}'), 8);
      assert.equal(sample(t, 'moor_frames_in_total{type="UNKNOWN"}'), 1);
      assert.equal(sample(t, 'moor_bytes_in_total{type="UNKNOWN"}'), 10);
      assert.equal(sample(t, 'moor_frames_out_total{type="PUSH"}'), 1);
      assert.equal(sample(t, 'moor_bytes_out_total{type="PUSH"}'), 100);
      assert.equal(sample(t, 'moor_pushes_accepted_total'), 3);
      assert.equal(sample(t, 'moor_pushes_delivered_total'), 2);
      assert.equal(sample(t, 'moor_pushes_acked_total'), 2);
      assert.equal(sample(t, 'moor_push_delivery_seconds_count'), 2);
      assert.equal(sample(t, 'moor_push_delivery_seconds_bucket{le="0.025"}'), 1);
      assert.equal(sample(t, 'moor_push_delivery_seconds_bucket{le="2.5"}'), 2);
      assert.equal(sample(t, 'moor_inbox_depth'), 17);
      assert.equal(sample(t, 'moor_errors_total{code="REPLACED"}'), 1);
      assert.equal(sample(t, 'moor_errors_total{code="UNKNOWN"}'), 1);
      assert.match(t, /# TYPE moor_connections gauge/);
      assert.match(t, /# TYPE moor_frames_in_total counter/);
      assert.doesNotMatch(t, /nodejs_eventloop/);
    });

    test('typed handles by label name', async () => {
      const m = new Metrics({ defaultMetrics: false });
      m.framesIn.inc('ACK', 5);
      m.connections.set('tcp', 9);
      m.connections.dec('tcp');
      m.handshakes.inc('timeout');
      assert.equal(m.framesIn.get('ACK'), 5);
      const t = await m.text();
      assert.equal(sample(t, 'moor_frames_in_total{type="ACK"}'), 5);
      assert.equal(sample(t, 'moor_connections{transport="tcp"}'), 8);
      assert.equal(sample(t, 'moor_handshakes_total{result="timeout"}'), 1);
    });

    test('scrapes do not reset counters', async () => {
      const m = new Metrics({ defaultMetrics: false });
      m.frameIn(FrameType.HELLO, 1);
      await m.text();
      m.frameIn(FrameType.HELLO, 1);
      assert.equal(sample(await m.text(), 'moor_frames_in_total{type="HELLO"}'), 2);
    });

    test('default metrics carry the prefix (event-loop lag)', async () => {
      const t = await new Metrics().text();
      assert.match(t, /^moor_nodejs_eventloop_lag_seconds /m);
      assert.match(t, /^moor_process_resident_memory_bytes /m);
    });
  });

  describe('cluster aggregation', () => {
    test('outside a worker: the fallback registry, or a clear error', async () => {
      const m = new Metrics({ defaultMetrics: false });
      m.frameIn(FrameType.PING, 4);
      assert.equal(sample(await requestClusterMetrics({ fallback: m.registry }), 'moor_frames_in_total{type="PING"}'), 1);
      await assert.rejects(requestClusterMetrics(), /runs in a cluster worker/);
    });

    test('a worker gets the sum over all workers from the primary', { timeout: 30_000 }, async () => {
      const local = new Metrics({ defaultMetrics: false });
      local.pushesAccepted(1);
      const primary = installPrimaryMetricsResponder({ local: local.registry });
      cluster.setupPrimary({ exec: __filename, silent: true });
      const workers: Worker[] = [];
      try {
        const ready: Array<Promise<void>> = [];
        for (let i = 0; i < 2; i++) {
          const w = cluster.fork({ MOOR_METRICS_TEST_WORKER: String(i) });
          workers.push(w);
          ready.push(
            new Promise((resolve, reject) => {
              w.on('message', (msg: { type?: string }) => msg.type === 'test:ready' && resolve());
              w.on('exit', (code) => reject(new Error(`worker ${i} exited with ${code}`)));
            }),
          );
        }
        await Promise.all(ready);
        const answer = new Promise<{ text?: string; error?: string }>((resolve) => {
          workers[1]!.on('message', (msg: { type?: string; text?: string; error?: string }) => {
            if (msg.type === 'test:result') resolve(msg);
          });
        });
        workers[1]!.send({ type: 'test:go' });
        const r = await answer;
        assert.equal(r.error, undefined);
        const t = r.text!;
        // worker i counted i+1 PINGs: 1 + 2
        assert.equal(sample(t, 'moor_frames_in_total{type="PING"}'), 3);
        assert.equal(sample(t, 'moor_bytes_in_total{type="PING"}'), 12);
        assert.equal(sample(t, 'moor_connections{transport="ws"}'), 2);
        // every worker reads the same store: the depth is not summed
        assert.equal(sample(t, 'moor_inbox_depth'), 40);
        // the primary's own registry is appended
        assert.match(t, /^moor_pushes_accepted_total 1$/m);
        // concurrent scrapes share one gather
        let gathers = 0;
        const gather = primary.aggregator.clusterMetrics.bind(primary.aggregator);
        primary.aggregator.clusterMetrics = () => {
          gathers++;
          return gather();
        };
        const [a, b] = await Promise.all([primary.scrape(), primary.scrape()]);
        assert.equal(a, b);
        assert.equal(gathers, 1);
      } finally {
        primary.uninstall();
        for (const w of workers) w.kill();
      }
    });
  });
}

/** A forked worker: count some frames, answer the primary, and on `go` ask for the cluster text. */
function runWorker(index: number): void {
  const m = new Metrics({ defaultMetrics: false });
  for (let i = 0; i <= index; i++) m.frameIn(FrameType.PING, 4);
  m.connOpened(0);
  m.setInboxDepth(40 - index);
  installWorkerMetrics(m.registry);
  process.on('message', (msg: { type?: string }) => {
    if (msg.type !== 'test:go') return;
    requestClusterMetrics().then(
      (text) => process.send?.({ type: 'test:result', text }),
      (err: Error) => process.send?.({ type: 'test:result', error: err.message }),
    );
  });
  process.send?.({ type: 'test:ready' });
}

const workerIndex = process.env.MOOR_METRICS_TEST_WORKER;
if (cluster.isWorker && workerIndex !== undefined) runWorker(Number(workerIndex));
else runTests();
