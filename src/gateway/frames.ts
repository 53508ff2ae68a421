/**
 * Gateway → device frames, encoded once here so every transport sends the same bytes.
 */
import { ERROR_CODE_NAMES, type ErrorCodeValue, FrameType } from '../protocol/constants';
import { encodeFrame } from '../protocol/encoder';
import { moor } from '../protocol/generated/moor';

const v1 = moor.v1;

export const PONG_EMPTY: Buffer = encodeFrame(FrameType.PONG, 0, 0);

export function errorFrame(code: ErrorCodeValue, message: string, retryAfterMs = 0, redirect = ''): Buffer {
  const payload = v1.Error.encode({ code, message, retryAfterMs, redirect }).finish();
  return encodeFrame(FrameType.ERROR, 0, 0, payload);
}

export function welcomeFrame(w: moor.v1.IWelcome): Buffer {
  return encodeFrame(FrameType.WELCOME, 0, 0, v1.Welcome.encode(w).finish());
}

export function pongAdviceFrame(heartbeatMs: number): Buffer {
  return encodeFrame(FrameType.PONG, 0, 0, v1.HeartbeatAdvice.encode({ heartbeatMs }).finish());
}

export function responseFrame(stream: number, status: number, body: Uint8Array, error: string): Buffer {
  return encodeFrame(FrameType.RESPONSE, 0, stream, v1.Response.encode({ status, body, error }).finish());
}

export function syncDoneFrame(headSeq: number, more: boolean): Buffer {
  return encodeFrame(FrameType.SYNC_DONE, 0, 0, v1.SyncDone.encode({ headSeq, more }).finish());
}

export function goAwayFrame(reason: number, reconnectAfterMs: number, endpoint: string): Buffer {
  return encodeFrame(FrameType.GOAWAY, 0, 0, v1.GoAway.encode({ reason, reconnectAfterMs, endpoint }).finish());
}

/** The fields of a push that are the same for every device it goes to. */
export interface PushTemplate {
  id: string;
  topic: string;
  body: Uint8Array;
  priority: number;
  expiresAtMs: number;
  sentAtMs: number;
}

export function pushPayload(seq: number, t: PushTemplate): Uint8Array {
  return v1.Push.encode({
    seq,
    id: t.id,
    topic: t.topic,
    body: t.body,
    priority: t.priority,
    expiresAtMs: t.expiresAtMs,
    sentAtMs: t.sentAtMs,
  }).finish();
}

export function pushFrame(seq: number, t: PushTemplate): Buffer {
  return encodeFrame(FrameType.PUSH, 0, 0, pushPayload(seq, t));
}

export function errorName(code: number): string {
  return ERROR_CODE_NAMES[code] ?? `CODE_${code}`;
}
