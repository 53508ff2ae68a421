/**
 * sd_notify(3) for the primary: READY, WATCHDOG, STATUS, RELOADING, STOPPING. A no-op
 * without $NOTIFY_SOCKET (not started by systemd as Type=notify). Node cannot send on unix
 * datagram sockets, so the datagram goes through the native module (native/src/sd_notify.rs).
 */
import { nativeFunction } from '../protocol/native';

/** Set by systemd for the main process only: the workers must not inherit them. */
export const SYSTEMD_ENV = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

type Binding = (state: string) => boolean;

let binding: Binding | string | undefined;

export type NotifyFields = Readonly<Record<string, string | number>>;

export interface NotifyResult {
  /** systemd has the datagram. */
  sent: boolean;
  /** Why not, when systemd asked for notifications (NOTIFY_SOCKET set) and did not get them. */
  error?: string;
}

/** `{READY: 1, STATUS: 'up'}` → `READY=1\nSTATUS=up` (a value never spans lines). */
export function formatState(fields: NotifyFields): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
    .join('\n');
}

/** Sends `fields` to systemd. Without NOTIFY_SOCKET: `{sent: false}` and nothing else. */
export function sdNotify(fields: NotifyFields): NotifyResult {
  // The binding reads NOTIFY_SOCKET itself; checking here keeps the no-systemd path free.
  const socket = process.env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return { sent: false };
  binding ??= nativeFunction<Binding>('sdNotify'); // or why it cannot be had
  if (typeof binding === 'string') return { sent: false, error: `native sd_notify unavailable: ${binding}` };
  if (binding(formatState(fields))) return { sent: true };
  return { sent: false, error: `cannot send to NOTIFY_SOCKET ${socket}` };
}

/**
 * The watchdog period systemd expects from this process, in ms, or 0 when there is none
 * (WATCHDOG_USEC unset, or WATCHDOG_PID names another process).
 */
export function watchdogMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return 0;
  const owner = env.WATCHDOG_PID;
  if (owner !== undefined && owner !== '' && Number(owner) !== pid) return 0;
  return usec / 1000;
}

/** CLOCK_MONOTONIC in µs, as RELOADING=1 wants it in MONOTONIC_USEC (uv_hrtime is that clock). */
export function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
