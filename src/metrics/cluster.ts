/**
 * /metrics over node:cluster. Any worker may get the scrape (the API port is shared),
 * but only the primary can ask every worker: the worker asks the primary over the IPC
 * channel, the primary's AggregatorRegistry gathers all workers' registries (prom-client's
 * own request/response) and the text goes back to the asking worker.
 *
 *   worker W ──moor:metrics:req{id}──► primary ──prom-client:getMetricsReq──► every worker
 *   worker W ◄─moor:metrics:res{id,text}── primary ◄──────── their registries (JSON)
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type PrometheusContentType, type Registry } from 'prom-client';

export const METRICS_REQ = 'moor:metrics:req';
export const METRICS_RES = 'moor:metrics:res';

interface MetricsRequest {
  type: typeof METRICS_REQ;
  id: number;
}
interface MetricsResponse {
  type: typeof METRICS_RES;
  id: number;
  text?: string;
  error?: string;
}

const isRequest = (m: unknown): m is MetricsRequest =>
  typeof m === 'object' && m !== null && (m as MetricsRequest).type === METRICS_REQ && typeof (m as MetricsRequest).id === 'number';
const isResponse = (m: unknown): m is MetricsResponse =>
  typeof m === 'object' && m !== null && (m as MetricsResponse).type === METRICS_RES && typeof (m as MetricsResponse).id === 'number';

/**
 * Worker side of prom-client's aggregation: the primary's scrapes read `registries`.
 * Call once in every worker; a worker that does not answer fails the whole scrape
 * after prom-client's 5 s timeout.
 */
export function installWorkerMetrics(registries: Registry | Registry[]): void {
  AggregatorRegistry.setRegistries(Array.isArray(registries) ? registries : [registries]);
  // prom-client installs its worker-side listener in the constructor, once per process
  new AggregatorRegistry<PrometheusContentType>();
}

export interface PrimaryMetrics {
  readonly aggregator: AggregatorRegistry<PrometheusContentType>;
  /** Aggregated text of all workers (plus the primary's own registry); concurrent calls share one scrape. */
  scrape(): Promise<string>;
  uninstall(): void;
}

/**
 * Primary side: answers workers' METRICS_REQ with the aggregated text. `local` is
 * the primary's own registry (worker restarts, reloads), appended unaggregated.
 */
export function installPrimaryMetricsResponder(opts: { local?: Registry } = {}): PrimaryMetrics {
  if (!cluster.isPrimary) throw new Error('installPrimaryMetricsResponder() runs in the cluster primary');
  const aggregator = new AggregatorRegistry<PrometheusContentType>();
  let inflight: Promise<string> | null = null;

  const gather = async (): Promise<string> => {
    try {
      const text = await aggregator.clusterMetrics();
      return opts.local ? text + (await opts.local.metrics()) : text;
    } finally {
      inflight = null;
    }
  };
  const scrape = (): Promise<string> => {
    inflight ??= gather();
    return inflight;
  };

  const answer = (worker: Worker, msg: MetricsResponse): void => {
    // the worker may have died while the scrape ran
    if (!worker.isConnected()) return;
    try {
      worker.send(msg);
    } catch {
      // channel closed between the check and the send: nobody is waiting
    }
  };

  const onMessage = (worker: Worker, msg: unknown): void => {
    if (!isRequest(msg)) return;
    scrape().then(
      (text) => answer(worker, { type: METRICS_RES, id: msg.id, text }),
      (err: unknown) => answer(worker, { type: METRICS_RES, id: msg.id, error: String((err as Error)?.message ?? err) }),
    );
  };
  cluster.on('message', onMessage);
  return { aggregator, scrape, uninstall: () => cluster.off('message', onMessage) };
}

interface Pending {
  resolve(text: string): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const pending = new Map<number, Pending>();
let nextId = 1;

/** Listening only while a request is pending: a 'message' listener keeps the IPC channel (and the process) alive. */
function onResponse(msg: unknown): void {
  if (!isResponse(msg)) return;
  const p = pending.get(msg.id);
  if (p === undefined) return;
  settle(msg.id);
  if (msg.error !== undefined) p.reject(new Error(`cluster metrics: ${msg.error}`));
  else p.resolve(msg.text ?? '');
}

function settle(id: number): void {
  const p = pending.get(id);
  if (p === undefined) return;
  clearTimeout(p.timer);
  pending.delete(id);
  if (pending.size === 0) process.off('message', onResponse);
}

export interface ClusterMetricsOptions {
  /** Longer than prom-client's own 5 s so the primary's error arrives first. Default 7 s. */
  timeoutMs?: number;
  /** Outside a cluster worker (single process, tests), answer with this registry's text. */
  fallback?: Registry;
}

/** The metrics of every worker, aggregated by the primary (call from a worker). */
export function requestClusterMetrics(opts: ClusterMetricsOptions = {}): Promise<string> {
  const send = process.send?.bind(process);
  if (!cluster.isWorker || send === undefined) {
    if (opts.fallback) return opts.fallback.metrics();
    return Promise.reject(new Error('requestClusterMetrics() runs in a cluster worker'));
  }
  const id = nextId++;
  const timeoutMs = opts.timeoutMs ?? 7000;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      settle(id);
      reject(new Error(`cluster metrics: the primary did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    if (pending.size === 0) process.on('message', onResponse);
    pending.set(id, { resolve, reject, timer });
    const req: MetricsRequest = { type: METRICS_REQ, id };
    send(req, undefined, undefined, (err: Error | null) => {
      if (err === null || !pending.has(id)) return;
      settle(id);
      reject(new Error(`cluster metrics: cannot reach the primary: ${err.message}`));
    });
  });
}
