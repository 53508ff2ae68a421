/**
 * Flow-control metrics (`moor_flow_*`, `moor_lane_*`), on the worker's registry.
 * Unit names come from the config, so these are plain prom-client labelled metrics;
 * they are updated per push or per scheduler turn, never per frame.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { getMetrics, METRICS_PREFIX } from '../metrics/registry';
import { LANE_NAMES, type LaneValue } from './lanes';

export const PUSH_RESULTS = ['passed', 'queued', 'rejected'] as const;
export const REFUSALS = ['accept', 'inbound', 'slow'] as const;
export type Refusal = (typeof REFUSALS)[number];

/** Seconds a job waited for its lane: the bound of README "Flow control" sits in the low buckets. */
const LANE_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
const QUEUE_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

export class FlowMetrics {
  readonly pushes: Counter<'unit' | 'result'>;
  readonly queued: Gauge<'unit'>;
  readonly queueWait: Histogram<'unit'>;
  readonly laneWait: Histogram<'lane'>;
  readonly laneSends: Counter<'lane'>;
  readonly storeWrite: Histogram<'lane'>;
  readonly refused: Counter<'reason'>;
  readonly deferred: Counter;
  readonly slowSessions: Gauge;
  readonly slowBuffered: Gauge;
  private readonly laneLabels = LANE_NAMES.map((lane) => ({ lane }));

  constructor(registry: Registry) {
    const p = METRICS_PREFIX;
    const registers = [registry];
    this.pushes = new Counter({ name: `${p}flow_pushes_total`, help: 'Pushes by isolation unit and pacing result (passed at once, queued, rejected with 429)', labelNames: ['unit', 'result'], registers });
    this.queued = new Gauge({ name: `${p}flow_queued`, help: 'Pushes waiting for their unit budget', labelNames: ['unit'], registers });
    this.queueWait = new Histogram({ name: `${p}flow_queue_wait_seconds`, help: 'Time paced pushes waited for their unit budget', labelNames: ['unit'], buckets: QUEUE_BUCKETS, registers });
    this.laneWait = new Histogram({ name: `${p}lane_wait_seconds`, help: 'Time a delivery job waited in its priority lane before it started', labelNames: ['lane'], buckets: LANE_BUCKETS, registers });
    this.storeWrite = new Histogram({ name: `${p}push_store_seconds`, help: 'Time a durable push from the API took to be stored (write transaction committed and synced), by the lane of its priority', labelNames: ['lane'], buckets: LANE_BUCKETS, registers });
    this.laneSends = new Counter({ name: `${p}lane_sends_total`, help: 'Writes done by the lane scheduler, by lane', labelNames: ['lane'], registers });
    this.refused = new Counter({ name: `${p}flow_refused_total`, help: 'Connections refused or closed by flow control: accept rate, inbound rate, slow consumer', labelNames: ['reason'], registers });
    this.deferred = new Counter({ name: `${p}flow_deferred_total`, help: 'Durable pushes left in the inbox for a session too slow to take them live', registers });
    this.slowSessions = new Gauge({ name: `${p}flow_slow_sessions`, help: 'Sessions found slow (unsent bytes above max_buffered / 4), at the last sweep', registers });
    this.slowBuffered = new Gauge({ name: `${p}flow_slow_buffered_bytes`, help: 'Unsent bytes held for slow sessions, at the last sweep', registers });
    for (const reason of REFUSALS) this.refused.inc({ reason }, 0);
  }

  laneStarted(lane: LaneValue, waitMs: number): void {
    this.laneWait.observe(this.laneLabels[lane], waitMs / 1000);
  }

  stored(lane: LaneValue, ms: number): void {
    this.storeWrite.observe(this.laneLabels[lane], ms / 1000);
  }

  laneSent(lane: LaneValue, n: number): void {
    this.laneSends.inc(this.laneLabels[lane], n);
  }
}

let instance: FlowMetrics | null = null;

/** The process's flow metrics, on the process's registry (created on first use). */
export function flowMetrics(): FlowMetrics {
  instance ??= new FlowMetrics(getMetrics().registry);
  return instance;
}
