/**
 * The gateway's Prometheus metrics (`moor_` prefix). Labelled counters and gauges
 * whose label values are known up front keep their numbers in a Float64Array: a hot
 * path update is one array add, and the prom-client metric copies the array in at
 * scrape time (its own labelled inc hashes the label object on every call).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { KIND_COUNT, KIND_LABELS } from '../heartbeat/kinds';
import type { ClassChange } from '../heartbeat/policy';
import { ERROR_CODE_NAMES, FRAME_TYPE_NAMES, MAX_FRAME_TYPE } from '../protocol/constants';

export const METRICS_PREFIX = 'moor_';
export const METRICS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/** Index = TransportKind of src/gateway/session.ts (WS 0, TCP 1). */
export const TRANSPORT_LABELS = ['ws', 'tcp'] as const;
export type TransportLabel = (typeof TRANSPORT_LABELS)[number];

export const HANDSHAKE_RESULTS = [
  'ok',
  'auth_failed',
  'protocol_error',
  'timeout',
  'internal',
  'overloaded',
  'redirect',
  'closed',
] as const;
export type HandshakeResult = (typeof HANDSHAKE_RESULTS)[number];

/** Index = frame type code; 0 collects codes outside the protocol's table. */
export const FRAME_LABELS: readonly string[] = Array.from({ length: MAX_FRAME_TYPE + 1 }, (_, i) =>
  i === 0 ? 'UNKNOWN' : FRAME_TYPE_NAMES[i]!,
);
const ERROR_LABELS: readonly string[] = Array.from({ length: ERROR_CODE_NAMES.length }, (_, i) =>
  i === 0 ? 'UNKNOWN' : ERROR_CODE_NAMES[i]!,
);

/** Seconds from a push's sent_at to its delivery; long tail for devices that sync later. */
export const DELIVERY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];

/** Seconds of advised heartbeat intervals: foreground, the Mars range, cellular and Wi-Fi maxima. */
export const HEARTBEAT_BUCKETS = [60, 120, 210, 270, 300, 420, 600, 900, 1200, 1500, 1680, 2100, 2700, 3600];
export const PROBE_RESULTS = ['success', 'failure'] as const;
export const CLASS_CHANGES: readonly ClassChange[] = ['step_up', 'ceiling', 'back_off'];

/** One number per label value, in a Float64Array; the metric reads it at scrape time. */
abstract class LabelVec<L extends string> {
  readonly values: Float64Array;
  protected readonly index = new Map<string, number>();

  constructor(readonly labels: readonly L[]) {
    this.values = new Float64Array(labels.length);
    for (let i = 0; i < labels.length; i++) this.index.set(labels[i]!, i);
  }

  inc(label: L, n = 1): void {
    const i = this.index.get(label);
    if (i !== undefined) this.values[i] += n;
  }

  /** By label index (e.g. a frame type code): the cheapest update. Out of range is a no-op. */
  incAt(i: number, n = 1): void {
    this.values[i] += n;
  }

  get(label: L): number {
    const i = this.index.get(label);
    return i === undefined ? 0 : this.values[i]!;
  }
}

/** A counter with one label whose values are fixed; updates are array adds. */
export class CounterVec<L extends string = string> extends LabelVec<L> {
  constructor(registry: Registry, name: string, help: string, labelName: string, labels: readonly L[]) {
    super(labels);
    const values = this.values;
    new Counter({
      name,
      help,
      labelNames: [labelName],
      registers: [registry],
      collect() {
        this.reset();
        for (let i = 0; i < labels.length; i++) this.inc({ [labelName]: labels[i]! }, values[i]!);
      },
    });
  }
}

/** A gauge with one label whose values are fixed. */
export class GaugeVec<L extends string = string> extends LabelVec<L> {
  constructor(registry: Registry, name: string, help: string, labelName: string, labels: readonly L[]) {
    super(labels);
    const values = this.values;
    new Gauge({
      name,
      help,
      labelNames: [labelName],
      registers: [registry],
      collect() {
        for (let i = 0; i < labels.length; i++) this.set({ [labelName]: labels[i]! }, values[i]!);
      },
    });
  }

  dec(label: L, n = 1): void {
    this.inc(label, -n);
  }

  set(label: L, v: number): void {
    const i = this.index.get(label);
    if (i !== undefined) this.values[i] = v;
  }
}

export interface MetricsOptions {
  /** prom-client's process metrics (CPU, memory, GC, event-loop lag), prefixed. Default true. */
  defaultMetrics?: boolean;
}

const frameIndex = (type: number): number => (type > 0 && type <= MAX_FRAME_TYPE ? type : 0);

/**
 * Every metric a worker updates. The methods match what the gateway calls
 * (GatewayMetrics in src/gateway/deps.ts); the fields are the typed handles.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly connections: GaugeVec<TransportLabel>;
  readonly handshakes: CounterVec<HandshakeResult>;
  readonly framesIn: CounterVec;
  readonly framesOut: CounterVec;
  readonly bytesIn: CounterVec;
  readonly bytesOut: CounterVec;
  readonly pushesAcceptedTotal: Counter;
  readonly pushesDeliveredTotal: Counter;
  readonly pushesAckedTotal: Counter;
  readonly deliveryLatency: Histogram;
  readonly inboxDepth: Gauge;
  /** Label = error name of protocol.md §4 (AUTH_FAILED, ...). */
  readonly errors: CounterVec;
  /** Intervals advised (WELCOME and PONG advice), by network kind. */
  readonly heartbeatIntervals: Histogram;
  readonly heartbeatProbes: CounterVec<(typeof PROBE_RESULTS)[number]>;
  readonly heartbeatChanges: CounterVec<ClassChange>;
  /** Closes that look like a NAT timeout (PING overdue, no quiet interval got through), by kind. */
  readonly natTimeouts: CounterVec;
  /** How long each malloc_trim after a major GC took (src/util/heap-trim.ts). */
  readonly heapTrim: Histogram;
  /** One labels object per kind, so an observation allocates nothing. */
  private readonly kindLabels = KIND_LABELS.map((kind) => ({ kind }));

  constructor(opts: MetricsOptions = {}) {
    const r = this.registry;
    const p = METRICS_PREFIX;
    this.connections = new GaugeVec(r, `${p}connections`, 'Open device connections', 'transport', TRANSPORT_LABELS);
    this.handshakes = new CounterVec(r, `${p}handshakes_total`, 'Handshakes by result', 'result', HANDSHAKE_RESULTS);
    this.framesIn = new CounterVec(r, `${p}frames_in_total`, 'Frames received from devices', 'type', FRAME_LABELS);
    this.framesOut = new CounterVec(r, `${p}frames_out_total`, 'Frames sent to devices', 'type', FRAME_LABELS);
    this.bytesIn = new CounterVec(r, `${p}bytes_in_total`, 'Bytes of frames received from devices', 'type', FRAME_LABELS);
    this.bytesOut = new CounterVec(r, `${p}bytes_out_total`, 'Bytes of frames sent to devices', 'type', FRAME_LABELS);
    const registers = [r];
    this.pushesAcceptedTotal = new Counter({
      name: `${p}pushes_accepted_total`,
      help: 'Pushes accepted from the API (one per target device)',
      registers,
    });
    this.pushesDeliveredTotal = new Counter({
      name: `${p}pushes_delivered_total`,
      help: 'PUSH frames written to devices',
      registers,
    });
    this.pushesAckedTotal = new Counter({ name: `${p}pushes_acked_total`, help: 'Durable pushes acknowledged by devices', registers });
    this.deliveryLatency = new Histogram({
      name: `${p}push_delivery_seconds`,
      help: 'Time from a push being accepted to its PUSH frame being written',
      buckets: DELIVERY_BUCKETS,
      registers,
    });
    // every worker reads the same store: summing over workers would multiply it
    this.inboxDepth = new Gauge({
      name: `${p}inbox_depth`,
      help: 'Durable pushes stored, all devices',
      aggregator: 'max',
      registers,
    });
    this.errors = new CounterVec(r, `${p}errors_total`, 'ERROR frames sent, by error name', 'code', ERROR_LABELS);
    this.heartbeatIntervals = new Histogram({
      name: `${p}heartbeat_advised_seconds`,
      help: 'Heartbeat intervals advised to devices (WELCOME and PONG advice), by network kind',
      labelNames: ['kind'],
      buckets: HEARTBEAT_BUCKETS,
      registers,
    });
    this.heartbeatProbes = new CounterVec(r, `${p}heartbeat_probes_total`, 'Evidence at probe intervals, by result', 'result', PROBE_RESULTS);
    this.heartbeatChanges = new CounterVec(r, `${p}heartbeat_class_changes_total`, 'Heartbeat class decisions, by kind of change', 'change', CLASS_CHANGES);
    this.natTimeouts = new CounterVec(r, `${p}nat_timeouts_suspected_total`, 'Session closes that look like a NAT timeout, by network kind', 'kind', KIND_LABELS);
    this.heapTrim = new Histogram({
      name: `${p}heap_trim_seconds`,
      help: 'Time each return of free malloc pages to the kernel held the malloc heap (after a major GC, on a pool thread)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: r, prefix: p });
  }

  // The gateway's hot-path calls: array adds, no allocation.

  connOpened(transport: number): void {
    this.connections.incAt(transport);
  }

  connClosed(transport: number): void {
    this.connections.values[transport] -= 1;
  }

  handshake(result: HandshakeResult): void {
    this.handshakes.inc(result);
  }

  frameIn(type: number, bytes: number): void {
    const i = frameIndex(type);
    this.framesIn.values[i] += 1;
    this.bytesIn.values[i] += bytes;
  }

  frameOut(type: number, bytes: number): void {
    const i = frameIndex(type);
    this.framesOut.values[i] += 1;
    this.bytesOut.values[i] += bytes;
  }

  pushesAccepted(n: number): void {
    this.pushesAcceptedTotal.inc(n);
  }

  pushDelivered(latencyMs: number): void {
    this.pushesDeliveredTotal.inc();
    this.deliveryLatency.observe(latencyMs > 0 ? latencyMs / 1000 : 0);
  }

  pushesAcked(n: number): void {
    if (n > 0) this.pushesAckedTotal.inc(n);
  }

  /** A protocol error code (protocol.md §4) sent in an ERROR frame. */
  error(code: number): void {
    this.errors.incAt(code > 0 && code < ERROR_LABELS.length ? code : 0);
  }

  /** Off the per-frame path: at WELCOME, and on a PING only when the advice changed. */
  heartbeatAdvised(kind: number, ms: number): void {
    this.heartbeatIntervals.observe(this.kindLabels[kind < KIND_COUNT ? kind : 0], ms / 1000);
  }

  heartbeatProbe(success: boolean): void {
    this.heartbeatProbes.values[success ? 0 : 1] += 1;
  }

  heartbeatChange(change: ClassChange): void {
    this.heartbeatChanges.inc(change);
  }

  natTimeoutSuspected(kind: number): void {
    this.natTimeouts.values[kind < KIND_COUNT ? kind : 0] += 1;
  }

  setInboxDepth(n: number): void {
    this.inboxDepth.set(n);
  }

  /** This process's metrics as Prometheus text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

let processMetrics: Metrics | null = null;

/** The process's one Metrics (with default metrics), created on first use. */
export function getMetrics(): Metrics {
  processMetrics ??= new Metrics();
  return processMetrics;
}
