/** A fake ApiBackend for the HTTP API's own tests (test/api-server.test.ts). */
import type { ApiBackend, DeviceInfo, PushCommand, PushOutcome } from '../../src/api/backend';
import type { ApiError } from '../../src/api/errors';

/** An ApiBackend that records calls and answers what each test sets. */
export class TestBackend implements ApiBackend {
  calls: Array<{ op: string; arg: unknown }> = [];
  devices = new Map<string, DeviceInfo>();
  connected = new Set<string>();
  dicts = new Map<number, Buffer>();
  readiness = { ok: true, reasons: [] as string[] };
  /** Thrown (rejected) by the next backend call when set. */
  failure: unknown = null;
  /** When set, push waits for this promise before answering. */
  pushGate: Promise<void> | null = null;
  /** When set, gatePush refuses every push with it (before the body is read). */
  refuse: ApiError | null = null;
  gated: string[] = [];

  gatePush(apiKey: string): ApiError | null {
    this.gated.push(apiKey);
    return this.refuse;
  }

  private check(op: string, arg: unknown): void {
    this.calls.push({ op, arg });
    if (this.failure !== null) {
      const f = this.failure;
      this.failure = null;
      throw f;
    }
  }

  async push(cmd: PushCommand): Promise<PushOutcome> {
    this.check('push', cmd);
    if (this.pushGate) await this.pushGate;
    const n = cmd.target.kind === 'device' ? cmd.target.deviceIds.length : 0;
    const out: PushOutcome = { id: cmd.id, accepted: n, online: 1 };
    if (cmd.durable) out.seqs = Array.from({ length: n }, (_, i) => i + 1);
    return out;
  }
  async deviceInfo(deviceId: string): Promise<DeviceInfo | null> {
    this.check('deviceInfo', deviceId);
    return this.devices.get(deviceId) ?? null;
  }
  async kick(deviceId: string): Promise<boolean> {
    this.check('kick', deviceId);
    return this.connected.delete(deviceId);
  }
  async metrics(): Promise<{ contentType: string; body: string }> {
    this.check('metrics', null);
    return { contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'moor_up 1\n' };
  }
  async ready(): Promise<{ ok: boolean; reasons: string[] }> {
    this.check('ready', null);
    return this.readiness;
  }
  async dict(id: number): Promise<Buffer | null> {
    this.check('dict', id);
    return this.dicts.get(id) ?? null;
  }
}
