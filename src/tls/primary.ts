/**
 * The primary's ticket-key service: the one source of the raw TCP listener's session
 * ticket keys for every worker, so a ticket made by one worker resumes on any other,
 * and (kept on disk, or shared through a file) after restarts and on other hosts.
 *
 *   generated (default)     a fresh key every tls.ticket_rotate_s; the one before stays
 *                           accepted; both kept in store.path (0600) across restarts
 *   tls.ticket_keys_file    whatever the file holds (an operator or a fleet tool rotates
 *                           it); re-read on SIGHUP and checked once a minute. A file with
 *                           one key: the key it replaced stays accepted as the previous.
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config/types';
import { isKeysRequest, KEYS, type TlsToWorker } from './messages';
import {
  type GeneratedKeys,
  keyId,
  keyName,
  loadGeneratedKeys,
  newTicketKey,
  readTicketKeysFile,
  saveGeneratedKeys,
  type TicketKeySet,
  toMessage,
} from './ticket-keys';

const FILE_POLL_MS = 60_000;

export class TicketKeyService {
  private set: TicketKeySet;
  private timer: NodeJS.Timeout | null = null;
  private fileStamp = '';
  private readonly onMessage = (worker: { send(m: TlsToWorker): boolean }, m: unknown): void => {
    if (isKeysRequest(m)) this.sendTo(worker);
  };
  private readonly onHup = (): void => this.checkFile('SIGHUP');

  /** null when TLS is off. Throws (clearly) when the keys file is unusable. */
  static start(config: Config, log: Logger, now = Date.now()): TicketKeyService | null {
    if (config.tls.cert === '') return null;
    return new TicketKeyService(config, log, now);
  }

  private constructor(
    private readonly config: Config,
    private readonly log: Logger,
    now: number,
  ) {
    const file = config.tls.ticket_keys_file;
    if (file !== '') {
      const keys = readTicketKeysFile(file);
      this.fileStamp = stamp(file);
      this.set = { generation: 1, current: keys.current, previous: keys.previous };
      this.timer = setInterval(() => this.checkFile('poll'), Math.min(FILE_POLL_MS, config.tls.ticket_rotate_s * 1000));
      process.on('SIGHUP', this.onHup);
      log.info({ source: file, key: keyId(keys.current), previous: keyId(keys.previous) }, 'tls ticket keys loaded from file');
    } else {
      const dir = config.store.path;
      let keys = loadGeneratedKeys(dir, config.tls.ticket_rotate_s, now);
      const kept = keys !== null;
      keys ??= { current: newTicketKey(), previous: null, sinceMs: now };
      this.persist(keys);
      this.set = { generation: 1, current: keys.current, previous: keys.previous };
      this.schedule(keys.sinceMs + config.tls.ticket_rotate_s * 1000 - now);
      log.info({ key: keyId(keys.current), previous: keyId(keys.previous), kept, rotate_s: config.tls.ticket_rotate_s }, 'tls ticket keys ready');
    }
    cluster.on('message', this.onMessage);
  }

  get keys(): TicketKeySet {
    return this.set;
  }

  /** Generated keys: make a new current key now (the rotation timer does this on schedule). */
  rotate(now = Date.now()): void {
    const keys: GeneratedKeys = { current: newTicketKey(), previous: this.set.current, sinceMs: now };
    this.persist(keys);
    this.update(keys.current, keys.previous, 'rotated');
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    cluster.removeListener('message', this.onMessage);
    process.removeListener('SIGHUP', this.onHup);
  }

  private schedule(inMs: number): void {
    this.timer = setTimeout(
      () => {
        this.timer = null;
        try {
          this.rotate();
        } catch (err) {
          this.log.error({ err }, 'tls ticket key rotation failed; trying again in a minute');
          this.schedule(FILE_POLL_MS);
          return;
        }
        this.schedule(this.config.tls.ticket_rotate_s * 1000);
      },
      Math.max(0, Math.min(inMs, 2 ** 31 - 1)),
    );
    this.timer.unref();
  }

  private persist(keys: GeneratedKeys): void {
    try {
      saveGeneratedKeys(this.config.store.path, keys);
    } catch (err) {
      // Still usable: resumption then survives worker restarts, not a restart of moor.
      this.log.warn({ err: (err as Error).message, dir: this.config.store.path }, 'cannot keep the tls ticket keys on disk');
    }
  }

  private checkFile(why: string): void {
    const file = this.config.tls.ticket_keys_file;
    const now = stamp(file);
    if (why === 'poll' && now === this.fileStamp) return;
    let keys: { current: Buffer; previous: Buffer | null };
    try {
      keys = readTicketKeysFile(file);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'tls.ticket_keys_file is unusable; keeping the keys in use');
      return;
    }
    this.fileStamp = now;
    if (keyName(keys.current) === keyName(this.set.current) && (keys.previous === null || this.set.previous?.equals(keys.previous))) return;
    // One key in the file: the one it replaced is still accepted.
    const previous = keys.previous ?? (keyName(keys.current) === keyName(this.set.current) ? this.set.previous : this.set.current);
    this.update(keys.current, previous, `changed (${why})`);
  }

  private update(current: Buffer, previous: Buffer | null, what: string): void {
    this.set = { generation: this.set.generation + 1, current, previous };
    this.log.info({ key: keyId(current), previous: keyId(previous), generation: this.set.generation }, `tls ticket keys ${what}`);
    for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) this.sendTo(w);
  }

  private sendTo(worker: { send(m: TlsToWorker): boolean }): void {
    try {
      worker.send({ type: KEYS, keys: toMessage(this.set) });
    } catch {
      // Its channel closed: it is exiting; a successor asks again.
    }
  }
}

function stamp(file: string): string {
  try {
    const s = fs.statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.mode}`;
  } catch {
    return '';
  }
}
