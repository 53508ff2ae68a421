/**
 * Compression metrics (`moor_compression_*`, `moor_dict_*`) on the worker's registry.
 * Encoded payloads are counted once per encode (a fan-out is one encode per codec
 * variant, whatever the number of devices), as array adds.
 */
import { Gauge, type Registry } from 'prom-client';
import { CounterVec, GaugeVec, getMetrics, METRICS_PREFIX } from '../metrics/registry';

/** Index = output of an encode: identity, lz4, zstd without a dictionary, zstd with one. */
export const OUT_CODECS = ['identity', 'lz4', 'zstd', 'zstd_dict'] as const;
export const OutCodec = { IDENTITY: 0, LZ4: 1, ZSTD: 2, ZSTD_DICT: 3 } as const;
/** Why a payload that could have been compressed went out as it was. */
export const SKIPS = ['small', 'not_smaller', 'back_off'] as const;
export const Skip = { SMALL: 0, NOT_SMALLER: 1, BACK_OFF: 2 } as const;
/** What a zstd-capable device got at HELLO: the newest dictionary, an older one, none. */
export const DICT_RESULTS = ['newest', 'older', 'none'] as const;
export const POLICY_STATES = ['full', 'raised_threshold', 'lz4', 'identity'] as const;
export const INFLATE_RESULTS = ['ok', 'too_large', 'corrupt', 'unknown_dict'] as const;
export const TRAIN_RESULTS = ['ok', 'too_few_samples', 'failed'] as const;

export class CompressionMetrics {
  readonly before: CounterVec;
  readonly after: CounterVec;
  readonly skipped: CounterVec;
  readonly negotiated: CounterVec;
  readonly inflated: CounterVec;
  readonly trainings: CounterVec;
  readonly policy: GaugeVec;
  readonly dicts: Gauge;

  constructor(registry: Registry) {
    const p = METRICS_PREFIX;
    this.before = new CounterVec(registry, `${p}compression_bytes_before_total`, 'Push payload bytes before compression, by the codec they went out with (once per encode)', 'codec', OUT_CODECS);
    this.after = new CounterVec(registry, `${p}compression_bytes_after_total`, 'Push payload bytes on the wire, by codec (once per encode)', 'codec', OUT_CODECS);
    this.skipped = new CounterVec(registry, `${p}compression_skipped_total`, 'Payloads a device could have taken compressed that went out as they were, by reason', 'reason', SKIPS);
    this.negotiated = new CounterVec(registry, `${p}compression_dict_sessions_total`, 'zstd sessions by dictionary negotiated: newest, older (the device lacks the newest), none (dictionary hit rate)', 'dict', DICT_RESULTS);
    this.inflated = new CounterVec(registry, `${p}compression_inflated_total`, 'Compressed device frames, by result', 'result', INFLATE_RESULTS);
    this.trainings = new CounterVec(registry, `${p}dict_trainings_total`, 'Dictionary trainings run by this worker, by result', 'result', TRAIN_RESULTS);
    this.policy = new GaugeVec(registry, `${p}compression_policy`, 'Workers in each per-frame policy state (event-loop lag back-off: full, raised threshold, lz4, identity)', 'state', POLICY_STATES);
    this.policy.set('full', 1);
    this.dicts = new Gauge({ name: `${p}dicts_loaded`, help: 'Dictionaries a worker holds (active and retired)', aggregator: 'max', registers: [registry] });
  }

  encoded(codec: number, before: number, after: number): void {
    this.before.values[codec] += before;
    this.after.values[codec] += after;
  }

  setPolicy(state: number): void {
    this.policy.values.fill(0);
    this.policy.values[state] = 1;
  }
}

let instance: CompressionMetrics | null = null;

/** The process's compression metrics (created on first use). */
export function compressionMetrics(): CompressionMetrics {
  instance ??= new CompressionMetrics(getMetrics().registry);
  return instance;
}
