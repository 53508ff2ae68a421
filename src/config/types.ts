/**
 * The resolved configuration: one typed object. Key names are the contract of
 * shared/api.md (`ws.port` is `config.ws.port`, `--ws.port=`, `MOOR_WS_PORT`).
 * Defaults and validation live in src/config/schema.ts.
 */
export interface Config {
  /** Worker processes (default: number of cores). */
  workers: number;
  ws: {
    port: number;
    host: string;
    path: string;
    /** First per-worker resume port; 0 means ws.port + 1, skipping the other listeners' ports (ports.ts). */
    resume_port_base: number;
  };
  tcp: { port: number; host: string };
  tls: {
    cert: string;
    key: string;
    /** Raw TCP session-ticket key rotation period, s; tickets live up to two periods (src/tls/ticket-keys.ts). */
    ticket_rotate_s: number;
    /** 48 or 96 bytes (current key, then the previous one), mode 0600: shared by hosts behind one address. */
    ticket_keys_file: string;
  };
  api: { port: number; host: string; keys: string[]; max_body: number };
  auth: { jwt_secret: string; jwt_public_key: string };
  store: { kind: 'embedded' | 'redis'; path: string; redis_url: string };
  node: { id: string; advertise: string };
  upstream: { url: string; timeout_ms: number; concurrency: number };
  heartbeat: {
    /** Interval advised in WELCOME until the smart policy knows better. */
    default_ms: number;
    /** Added to 2 x interval before an idle session is closed. */
    grace_ms: number;
    /** Smart heartbeat (src/heartbeat/policy.ts): bounds, probing and the rules' thresholds. */
    min_ms: number;
    max_ms: number;
    wifi_max_ms: number;
    foreground_ms: number;
    /** Percent of new background sessions of a probing class that get the probe interval. */
    probe_share: number;
    max_probes: number;
    probe_intervals: number;
    step_ms: number;
    successes_to_step: number;
    failures_to_back_off: number;
    margin_ms: number;
    cooldown_ms: number;
    max_classes: number;
    sync_ms: number;
  };
  /** Payload compression (src/compression/, README "Compression"). */
  compression: {
    /** Codecs the gateway offers devices: 'zstd', 'lz4'; empty = identity only. */
    codecs: string[];
    /** Payloads below this many bytes go out as they are (raised under event-loop lag). */
    min_bytes: number;
    zstd_level: number;
    /** One outgoing push payload in this many is sampled for training; 0 = none. */
    sample_one_in: number;
    /** A worker's sample ring: memory and store bytes. */
    sample_bytes: number;
    sample_flush_ms: number;
    /** Largest trained dictionary, bytes. */
    dict_bytes: number;
    /** Dictionary versions kept (older ones go once no connected device uses them). */
    dict_keep: number;
    /** Training refuses fewer samples than this. */
    dict_min_samples: number;
    /** Worker 0 trains this often (0 = only on demand). */
    train_interval_ms: number;
    /** How often a worker re-reads the dictionary index and reports the dictionaries in use. */
    dict_poll_ms: number;
    /** Base of WELCOME.dict_url; default http(s)://node.advertise:ws.port. */
    dict_url_base: string;
    /** Event-loop lag (worst stall in a second) above which a worker backs off, ms. */
    lag_ms: number;
    /** Calm this long before a worker steps back towards full compression, ms. */
    lag_recover_ms: number;
  };
  limits: {
    max_frame: number;
    handshake_timeout_ms: number;
    /** Pushes replayed per page after HELLO and per SYNC (SyncRequest.limit is capped to it). */
    sync_page: number;
    /** Buffered bytes a session may hold before sends are dropped (backpressure). */
    max_buffered: number;
    /** Flow control (src/flow/, README "Flow control"): new connections per second per worker, and the burst. */
    accept_per_s: number;
    accept_burst: number;
    /** Ceiling of the jittered retry delay given to refused connections. */
    accept_retry_max_ms: number;
    /** Per session: device frames and bytes per second, and the bursts tolerated above them. */
    in_frames_per_s: number;
    in_frames_burst: number;
    in_bytes_per_s: number;
    in_bytes_burst: number;
    /** The default unit's push budget, per API key per worker: target devices per second, burst, queue. */
    push_per_s: number;
    push_burst: number;
    push_queue: number;
    push_queue_bytes: number;
    /** A session whose unsent bytes stay above max_buffered / 4 this long is closed. */
    slow_ms: number;
  };
  /** Priority lanes of live delivery in each worker (src/flow/lanes.ts). */
  lanes: {
    weight_high: number;
    weight_normal: number;
    weight_bulk: number;
    /** Writes per scheduler turn: what a high-priority push may wait behind. */
    turn_sends: number;
  };
  /** Isolation units and the rules that colour pushes into them (src/flow/units.ts). */
  units: UnitConfig[];
  drain: {
    /** GOAWAY reconnect_after_ms is spread uniformly over [0, window_ms). */
    window_ms: number;
    /** How long devices get to leave after GOAWAY before the rest are closed. */
    grace_ms: number;
  };
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' };
}

/** One rule of a unit: pushes whose `scope` matches the glob `match` go to the unit, `percent` of them. */
export interface UnitRule {
  scope: 'key' | 'topic' | 'device';
  match: string;
  percent: number;
}

/** An isolation unit: its budget (per API key, per worker) and the rules that pick its pushes. */
export interface UnitConfig {
  name: string;
  rate: number;
  burst: number;
  queue: number;
  queue_bytes: number;
  rules: UnitRule[];
}
