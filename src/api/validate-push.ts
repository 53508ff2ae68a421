/**
 * Validation of a `POST /v1/push` body (shared/api.md). Pure: JSON value in, a
 * PushCommand or every field error out (callers fix all of them in one round trip).
 */
import type { PushCommand, PushTarget } from './backend';

export interface FieldError {
  /** The JSON field, e.g. `device_ids[3]`; `(body)` for the document itself. */
  field: string;
  reason: string;
}

export type PushValidation = { ok: true; cmd: PushCommand } | { ok: false; errors: FieldError[] };

export const MAX_DEVICE_IDS = 1000;
export const MAX_DEVICE_ID_BYTES = 128;
export const MAX_TOPIC_BYTES = 256;
export const MAX_PUSH_ID_CHARS = 128;

const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'device_id',
  'device_ids',
  'topic',
  'all',
  'body',
  'body_b64',
  'priority',
  'ttl_s',
  'durable',
  'id',
]);

/** protocol.md Priority: NORMAL=0, HIGH=1, BULK=2. */
const PRIORITIES: Readonly<Record<string, number>> = { normal: 0, high: 1, bulk: 2 };

/** Standard alphabet; padding optional but, when present, correct. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

const has = (o: object, k: string): boolean => Object.hasOwn(o, k);

/** Why a device id is unacceptable, or null. */
export function deviceIdProblem(v: unknown): string | null {
  if (typeof v !== 'string') return 'must be a string';
  if (v.length === 0) return 'must not be empty';
  if (Buffer.byteLength(v, 'utf8') > MAX_DEVICE_ID_BYTES) return `must be at most ${MAX_DEVICE_ID_BYTES} bytes (UTF-8)`;
  return null;
}

function validateTarget(o: Record<string, unknown>, errors: FieldError[]): PushTarget | null {
  const given: string[] = [];
  if (has(o, 'device_id')) given.push('device_id');
  if (has(o, 'device_ids')) given.push('device_ids');
  if (has(o, 'topic')) given.push('topic');
  if (has(o, 'all')) {
    if (o.all !== true && o.all !== false) errors.push({ field: 'all', reason: 'must be a boolean' });
    else if (o.all) given.push('all');
  }
  if (given.length === 0) {
    errors.push({ field: 'device_id', reason: 'a target is required: one of device_id, device_ids, topic, all: true' });
    return null;
  }
  if (given.length > 1) {
    errors.push({ field: given[1]!, reason: `exactly one target is allowed, got ${given.join(' and ')}` });
    return null;
  }
  switch (given[0]) {
    case 'device_id': {
      const p = deviceIdProblem(o.device_id);
      if (p) {
        errors.push({ field: 'device_id', reason: p });
        return null;
      }
      return { kind: 'device', deviceIds: [o.device_id as string], single: true };
    }
    case 'device_ids':
      return validateDeviceIds(o.device_ids, errors);
    case 'topic': {
      const t = o.topic;
      if (typeof t !== 'string') errors.push({ field: 'topic', reason: 'must be a string' });
      else if (t.length === 0) errors.push({ field: 'topic', reason: 'must not be empty' });
      else if (Buffer.byteLength(t, 'utf8') > MAX_TOPIC_BYTES)
        errors.push({ field: 'topic', reason: `must be at most ${MAX_TOPIC_BYTES} bytes (UTF-8)` });
      else return { kind: 'topic', topic: t };
      return null;
    }
    default:
      return { kind: 'all' };
  }
}

function validateDeviceIds(v: unknown, errors: FieldError[]): PushTarget | null {
  if (!Array.isArray(v)) {
    errors.push({ field: 'device_ids', reason: 'must be an array of device id strings' });
    return null;
  }
  if (v.length === 0 || v.length > MAX_DEVICE_IDS) {
    errors.push({ field: 'device_ids', reason: `must hold 1 to ${MAX_DEVICE_IDS} ids, got ${v.length}` });
    return null;
  }
  const firstIndex = new Map<string, number>();
  const before = errors.length;
  for (let i = 0; i < v.length; i++) {
    const p = deviceIdProblem(v[i]);
    if (p) {
      errors.push({ field: `device_ids[${i}]`, reason: p });
      continue;
    }
    const prev = firstIndex.get(v[i]);
    if (prev !== undefined) errors.push({ field: `device_ids[${i}]`, reason: `duplicate of device_ids[${prev}]` });
    else firstIndex.set(v[i], i);
  }
  return errors.length === before ? { kind: 'device', deviceIds: v as string[], single: false } : null;
}

function validateBody(o: Record<string, unknown>, errors: FieldError[]): Buffer | null {
  const text = has(o, 'body');
  const b64 = has(o, 'body_b64');
  if (text && b64) {
    errors.push({ field: 'body_b64', reason: 'give either body or body_b64, not both' });
    return null;
  }
  if (!text && !b64) {
    errors.push({ field: 'body', reason: 'one of body (UTF-8 text) or body_b64 (base64) is required' });
    return null;
  }
  if (text) {
    if (typeof o.body === 'string') return Buffer.from(o.body, 'utf8');
    errors.push({ field: 'body', reason: 'must be a string (use body_b64 for binary)' });
    return null;
  }
  const s = o.body_b64;
  if (typeof s !== 'string') errors.push({ field: 'body_b64', reason: 'must be a base64 string' });
  else if (!BASE64.test(s)) errors.push({ field: 'body_b64', reason: 'is not valid base64 (standard alphabet A-Z a-z 0-9 + /)' });
  else return Buffer.from(s, 'base64');
  return null;
}

/**
 * Validates a parsed JSON body. `apiKey` is the caller's key; `newId` makes the push
 * id when the caller gave none.
 */
export function validatePush(input: unknown, apiKey: string, newId: () => string): PushValidation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, errors: [{ field: '(body)', reason: 'must be a JSON object' }] };
  }
  const o = input as Record<string, unknown>;
  const errors: FieldError[] = [];

  const unknown = Object.keys(o).filter((k) => !KNOWN_FIELDS.has(k));
  if (unknown.length > 0) {
    errors.push({ field: unknown.join(', '), reason: `unknown field${unknown.length > 1 ? 's' : ''}` });
  }

  const target = validateTarget(o, errors);
  const body = validateBody(o, errors);

  let priority = 0;
  if (has(o, 'priority')) {
    const p = o.priority;
    if (typeof p === 'string' && Object.hasOwn(PRIORITIES, p)) priority = PRIORITIES[p]!;
    else errors.push({ field: 'priority', reason: 'must be one of "high", "normal", "bulk"' });
  }

  let ttlMs = 0;
  if (has(o, 'ttl_s')) {
    const t = o.ttl_s;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || !Number.isSafeInteger(t * 1000))
      errors.push({ field: 'ttl_s', reason: 'must be a non-negative integer number of seconds (0 = no expiry)' });
    else ttlMs = t * 1000;
  }

  let durable = target === null || target.kind === 'device';
  if (has(o, 'durable')) {
    if (typeof o.durable !== 'boolean') errors.push({ field: 'durable', reason: 'must be a boolean' });
    else if (o.durable && target !== null && target.kind !== 'device')
      errors.push({
        field: 'durable',
        reason: `durable pushes to ${target.kind === 'topic' ? 'a topic' : 'all devices'} are not supported (fan-out is live-only); omit durable or set it to false`,
      });
    else durable = o.durable;
  }

  let id = '';
  const idGiven = has(o, 'id');
  if (idGiven) {
    if (typeof o.id !== 'string') errors.push({ field: 'id', reason: 'must be a string' });
    else if (o.id.length === 0) errors.push({ field: 'id', reason: 'must not be empty' });
    else if (o.id.length > MAX_PUSH_ID_CHARS)
      errors.push({ field: 'id', reason: `must be at most ${MAX_PUSH_ID_CHARS} characters` });
    else id = o.id;
  }

  if (errors.length > 0 || target === null || body === null) return { ok: false, errors };
  return {
    ok: true,
    cmd: { target, body, priority, ttlMs, durable, id: idGiven ? id : newId(), idGiven, apiKey },
  };
}

/** One line naming every field and why, for the 400 message. */
export function describeFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.field}: ${e.reason}`).join('; ');
}
