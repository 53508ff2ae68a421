/**
 * MoorClient options: the typed surface, its defaults in one place, and validation
 * that reports every mistake at once.
 */
import type { ConnectionOptions } from 'node:tls';
import { compressionCodec } from '../compression/codec';
import { moor } from '../protocol/generated/moor';
import { ClientCompression } from './compression';
import type { Endpoint } from './endpoint';

export interface MoorClientOptions {
  /** Default: 'ws' when `url` is given, else 'tcp'. */
  transport?: 'ws' | 'tcp';
  /** WebSocket address, e.g. ws://127.0.0.1:8080/ws. */
  url?: string;
  /** Raw TCP address. */
  host?: string;
  port?: number;
  /** TLS: for tcp, true or options for tls.connect; for wss://, options (ca, servername, ...). */
  tls?: boolean | ConnectionOptions;
  deviceId: string;
  /** A JWT, or a function asked before every connect (so a refreshed token is used). */
  token: string | (() => string | Promise<string>);
  /** Client name and version, e.g. 'acme-tv/2.1'. */
  client?: string;
  network?: { kind?: moor.v1.NetworkKind | keyof typeof moor.v1.NetworkKind; carrier?: string };
  foreground?: boolean;
  /** Codecs this device decodes: IDENTITY (default), LZ4, ZSTD (those two need the native module). */
  codecs?: moor.v1.Codec[];
  /** zstd dictionaries the device holds (their bytes): offered in HELLO.dict_ids and used to decode. */
  dictionaries?: Uint8Array[];
  /** Fetch the newer dictionary WELCOME.dict_url names, for the next session (default true with ZSTD). */
  fetchDictionaries?: boolean;
  /** A dictionary was fetched: persist it and pass it in `dictionaries` next time. */
  onDictionary?: (id: number, bytes: Uint8Array) => void | Promise<void>;
  /** Extra ids for HELLO.dict_ids (raw use: the gateway may pick one, so hold its bytes). */
  dictIds?: number[];
  /** The persisted sync key, read once before the first connect. Default: 0. */
  loadLastSeq?: () => number | Promise<number>;
  /** Persist the sync key; awaited before the ACK that lets the gateway forget those pushes. */
  saveLastSeq?: (seq: number) => void | Promise<void>;
  /** ACK each durable push once its 'push' listeners return. Default true; if false, call ack(seq). */
  autoAck?: boolean;
  /** Wait this long to batch ACKs (ms, default 50)... */
  ackDelayMs?: number;
  /** ...unless this many receipts are waiting (default 64). */
  ackBatch?: number;
  reconnect?: {
    /** Default true. */
    enabled?: boolean;
    /** First backoff window, ms (default 500). */
    baseMs?: number;
    /** Largest backoff window, ms (default 60,000). */
    maxMs?: number;
    /** Reconnect after ERROR AUTH_FAILED (only useful with a token function). Default false. */
    afterAuthFailed?: boolean;
    /** Reconnect after ERROR REPLACED. Default false. */
    afterReplaced?: boolean;
  };
  /** From starting a connection to WELCOME, ms (default 10,000). */
  handshakeTimeoutMs?: number;
  /** A PING unanswered this long means the server is gone, ms (default 10,000). */
  pongTimeoutMs?: number;
  /** Used if WELCOME carries no heartbeat_ms, ms (default 60,000). */
  heartbeatMs?: number;
  /** Default request() timeout, ms (default 30,000). */
  requestTimeoutMs?: number;
  /** A hole in the durable seqs that stays open this long, with no push arriving, is synced (ms, default 2,000). */
  gapSyncMs?: number;
  /** Injectable for tests: uniform in [0, 1). */
  random?: () => number;
}

export interface ResolvedOptions {
  home: Endpoint;
  deviceId: string;
  token: () => string | Promise<string>;
  client: string;
  network: moor.v1.Network.$Properties;
  foreground: boolean;
  codecs: moor.v1.Codec[];
  dictIds: number[];
  /** Decompression and dictionaries (src/client/compression.ts). */
  compression: ClientCompression;
  loadLastSeq: (() => number | Promise<number>) | null;
  saveLastSeq: ((seq: number) => void | Promise<void>) | null;
  autoAck: boolean;
  ackDelayMs: number;
  ackBatch: number;
  reconnect: { enabled: boolean; baseMs: number; maxMs: number; afterAuthFailed: boolean; afterReplaced: boolean };
  handshakeTimeoutMs: number;
  pongTimeoutMs: number;
  heartbeatMs: number;
  requestTimeoutMs: number;
  gapSyncMs: number;
  random: () => number;
}

export function resolveOptions(o: MoorClientOptions): ResolvedOptions {
  const errors: string[] = [];
  const transport = o.transport ?? (o.url !== undefined ? 'ws' : 'tcp');
  let home: Endpoint = { kind: 'ws', url: '' };
  if (transport === 'ws') {
    if (o.url === undefined || !/^wss?:\/\//.test(o.url) || !URL.canParse(o.url)) errors.push(`url: need ws://host:port/path or wss://... for transport ws, got ${JSON.stringify(o.url)}`);
    else home = { kind: 'ws', url: o.url, tls: typeof o.tls === 'object' ? o.tls : undefined };
    if (o.host !== undefined || o.port !== undefined) errors.push('host/port: only for transport tcp (put them in url)');
  } else if (transport === 'tcp') {
    if (!o.host) errors.push('host: required for transport tcp');
    if (!Number.isInteger(o.port) || (o.port as number) <= 0 || (o.port as number) > 65535) errors.push('port: need 1-65535 for transport tcp');
    if (o.url !== undefined) errors.push('url: only for transport ws (use host and port)');
    home = { kind: 'tcp', host: o.host ?? '', port: o.port ?? 0, tls: o.tls };
  } else {
    errors.push(`transport: 'ws' or 'tcp', not ${JSON.stringify(transport)}`);
  }
  if (typeof o.deviceId !== 'string' || o.deviceId === '') errors.push('deviceId: required');
  if (typeof o.token !== 'string' && typeof o.token !== 'function') errors.push('token: a string or a function returning one');
  const codecs = o.codecs ?? [moor.v1.Codec.IDENTITY];
  const known = [moor.v1.Codec.IDENTITY, moor.v1.Codec.LZ4, moor.v1.Codec.ZSTD];
  if (codecs.some((c) => !known.includes(c))) errors.push(`codecs: IDENTITY, LZ4 or ZSTD, got ${JSON.stringify(codecs)}`);
  else if (codecs.some((c) => c !== moor.v1.Codec.IDENTITY) && compressionCodec() === null) errors.push('codecs: LZ4 and ZSTD need the native module (npm run build:native)');
  let compression: ClientCompression | null = null;
  try {
    compression = new ClientCompression({
      codecs: errors.length ? [] : codecs,
      dictionaries: o.dictionaries ?? [],
      fetchDictionaries: o.fetchDictionaries ?? true,
      onDictionary: o.onDictionary ?? null,
      extraIds: o.dictIds ?? [],
    });
  } catch (e) {
    errors.push(`dictionaries: ${(e as Error).message}`);
  }
  const kind = o.network?.kind;
  const kindValue = typeof kind === 'string' ? moor.v1.NetworkKind[kind] : (kind ?? moor.v1.NetworkKind.NET_UNKNOWN);
  if (kindValue === undefined) errors.push(`network.kind: unknown ${JSON.stringify(kind)}`);
  const r = o.reconnect ?? {};
  const num = (name: string, v: number | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isFinite(v) || v < min) errors.push(`${name}: need a number >= ${min}, got ${v}`);
    return v;
  };
  const resolved: ResolvedOptions = {
    home,
    deviceId: o.deviceId,
    token: typeof o.token === 'function' ? o.token : () => o.token as string,
    client: o.client ?? 'moor-node',
    network: { kind: kindValue, carrier: o.network?.carrier ?? '' },
    foreground: o.foreground ?? false,
    codecs,
    dictIds: o.dictIds ?? [],
    compression: compression as ClientCompression,
    loadLastSeq: o.loadLastSeq ?? null,
    saveLastSeq: o.saveLastSeq ?? null,
    autoAck: o.autoAck ?? true,
    ackDelayMs: num('ackDelayMs', o.ackDelayMs, 50, 0),
    ackBatch: num('ackBatch', o.ackBatch, 64, 1),
    reconnect: {
      enabled: r.enabled ?? true,
      baseMs: num('reconnect.baseMs', r.baseMs, 500, 1),
      maxMs: num('reconnect.maxMs', r.maxMs, 60_000, 1),
      afterAuthFailed: r.afterAuthFailed ?? false,
      afterReplaced: r.afterReplaced ?? false,
    },
    handshakeTimeoutMs: num('handshakeTimeoutMs', o.handshakeTimeoutMs, 10_000, 1),
    pongTimeoutMs: num('pongTimeoutMs', o.pongTimeoutMs, 10_000, 1),
    heartbeatMs: num('heartbeatMs', o.heartbeatMs, 60_000, 1),
    requestTimeoutMs: num('requestTimeoutMs', o.requestTimeoutMs, 30_000, 1),
    gapSyncMs: num('gapSyncMs', o.gapSyncMs, 2_000, 1),
    random: o.random ?? Math.random,
  };
  if (resolved.reconnect.maxMs < resolved.reconnect.baseMs) errors.push('reconnect.maxMs: must be >= reconnect.baseMs');
  if (errors.length > 0) throw new TypeError(`MoorClient options:\n  ${errors.join('\n  ')}`);
  return resolved;
}
