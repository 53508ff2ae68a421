/**
 * `npm run bench -- heartbeat [--devices N] [--hours H] [--seed S]`: a seeded,
 * event-driven simulation of the smart heartbeat, running the real policy
 * (src/heartbeat/policy.ts) with the real defaults, against fixed 60 s, fixed 270 s and
 * an oracle that knows every NAT timeout.
 *
 * Devices move between their carrier (3G/4G/5G) and their home Wi-Fi, go in and out of
 * foreground, and lose coverage now and then. NAT timeouts per network are hidden from
 * the policy: it sees only what the gateway would see (PINGs and their quiet gaps,
 * closes) and HELLO.previous, attributed to the network the previous session ran on (as
 * the gateway does from the device record). A PING sent after the NAT forgot the mapping
 * is lost; the device notices a PONG timeout later, reconnects on the same network, and
 * that is a NAT-drop disconnect.
 *
 * Progress on stderr; one JSON line on stdout; an SVG of each class's advised interval
 * over time in bench/out/heartbeat.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaults } from '../src/config/schema';
import { KIND_LABELS, NetKind } from '../src/heartbeat/kinds';
import { HeartbeatPolicy, type HeartbeatReport, policyOptions } from '../src/heartbeat/policy';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** The client's PONG timeout (src/client/options.ts default). */
const PONG_TIMEOUT_MS = 10_000;
const T0 = Date.UTC(2025, 0, 1);

interface Network {
  kind: number;
  carrier: string;
  natMs: number;
}
/** The hidden truth: NAT idle timeouts per (kind, carrier). */
const CARRIERS = [
  { carrier: '460-00', natMs: 5 * MIN, share: 0.4 },
  { carrier: '460-01', natMs: 10 * MIN, share: 0.35 },
  { carrier: '310-260', natMs: 28 * MIN, share: 0.25 },
];
const CELL_KINDS = [
  { kind: NetKind.CELL_4G, share: 0.7 },
  { kind: NetKind.CELL_5G, share: 0.2 },
  { kind: NetKind.CELL_3G, share: 0.1 },
];
const ISPS = [
  { carrier: 'isp-a', natMs: 60 * MIN, share: 0.5 },
  { carrier: 'isp-b', natMs: 60 * MIN, share: 0.3 },
  { carrier: 'isp-c', natMs: 30 * MIN, share: 0.2 },
];
const NETWORKS: Network[] = [
  ...CARRIERS.flatMap((c) => CELL_KINDS.map((k) => ({ kind: k.kind, carrier: c.carrier, natMs: c.natMs }))),
  ...ISPS.map((i) => ({ kind: NetKind.WIFI, carrier: i.carrier, natMs: i.natMs })),
];
const WIFI_BASE = CARRIERS.length * CELL_KINDS.length;

// Device behaviour (means of exponential dwell times).
const WIFI_DWELL = 5 * HOUR;
const CELL_DWELL = 2 * HOUR;
const BACKGROUND_DWELL = 3 * HOUR;
const FOREGROUND_DWELL = 8 * MIN;
const LOSS_EVERY = 12 * HOUR;
const FIRST_CONNECT_SPREAD = 10 * MIN;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
}
const DEVICES = Math.floor(arg('devices', 100_000));
const HOURS = arg('hours', 24);
const SEED = Math.floor(arg('seed', 1));
const END = T0 + HOURS * HOUR;

function log(msg: string): void {
  process.stderr.write(`heartbeat: ${msg}\n`);
}

/** mulberry32 */
function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function pick<T extends { share: number }>(items: T[], u: number): number {
  let acc = 0;
  for (let i = 0; i < items.length; i++) {
    acc += items[i].share;
    if (u < acc) return i;
  }
  return items.length - 1;
}

/** Binary min-heap of (time, device, type, generation) in typed arrays. */
class EventQueue {
  private time = new Float64Array(1 << 16);
  private data = new Int32Array(3 << 16);
  size = 0;

  push(t: number, device: number, type: number, gen: number): void {
    if (this.size === this.time.length) {
      const time = new Float64Array(this.size * 2);
      time.set(this.time);
      const data = new Int32Array(this.size * 6);
      data.set(this.data);
      this.time = time;
      this.data = data;
    }
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.time[parent] <= t) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, t, device, type, gen);
  }

  /** Pops into `out` = [time, device, type, gen]. */
  pop(out: Float64Array): void {
    out[0] = this.time[0];
    out[1] = this.data[0];
    out[2] = this.data[1];
    out[3] = this.data[2];
    const last = --this.size;
    const t = this.time[last];
    const d = this.data[3 * last];
    const ty = this.data[3 * last + 1];
    const g = this.data[3 * last + 2];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && this.time[c + 1] < this.time[c]) c++;
      if (this.time[c] >= t) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, t, d, ty, g);
  }

  private move(from: number, to: number): void {
    this.time[to] = this.time[from];
    this.data[3 * to] = this.data[3 * from];
    this.data[3 * to + 1] = this.data[3 * from + 1];
    this.data[3 * to + 2] = this.data[3 * from + 2];
  }

  private set(i: number, t: number, d: number, ty: number, g: number): void {
    this.time[i] = t;
    this.data[3 * i] = d;
    this.data[3 * i + 1] = ty;
    this.data[3 * i + 2] = g;
  }
}

const Ev = { CONNECT: 0, SWITCH: 1, LOSS: 2, LOSS_END: 3, FOREGROUND: 4, PING: 5, IDLE: 6, SAMPLE: 7 } as const;

/** How a strategy advises: the real policy, or a fixed function of the network. */
interface Strategy {
  name: string;
  policy: HeartbeatPolicy | null;
  fixed(net: Network, foreground: boolean): number;
}

interface Result {
  name: string;
  heartbeats: number;
  backgroundHeartbeats: number;
  natDrops: number;
  sessions: number;
  /** Per class, [time, advice] samples (policy only). */
  series: number[][][];
}

const opts = policyOptions(defaults().heartbeat);
/** The simulated time, the policy's clock. */
const clock = { now: T0 };
const GRACE_MS = defaults().heartbeat.grace_ms;
const maxFor = (kind: number) => (kind === NetKind.WIFI || kind === NetKind.ETHERNET ? opts.wifiMaxMs : opts.maxMs);
/** What an oracle that knows the NAT timeout advises, within the same bounds and margin. */
const oracleMs = (n: Network) => Math.min(maxFor(n.kind), Math.max(opts.minMs, n.natMs - opts.marginMs));

function simulate(s: Strategy): Result {
  const started = Date.now();
  const p = s.policy;
  const n = DEVICES;
  const ids = Array.from({ length: n }, (_, i) => `d${i}`);
  const rand = Array.from({ length: n }, (_, i) => rng(SEED * 1_000_003 + i));
  const home = new Int32Array(n);
  const isp = new Int32Array(n);
  const net = new Int32Array(n);
  const fg = new Uint8Array(n);
  const online = new Uint8Array(n);
  // The device's current session.
  const gen = new Int32Array(n);
  const t0 = new Float64Array(n);
  const lastSeen = new Float64Array(n);
  const interval = new Float64Array(n);
  const tag = new Int32Array(n);
  const sessFg = new Uint8Array(n);
  const live = new Uint8Array(n);
  // The previous session as the gateway still holds it until the device's next HELLO or its idle close.
  const oldOpen = new Uint8Array(n);
  const oldTag = new Int32Array(n);
  const oldSeen = new Float64Array(n);
  const oldInterval = new Float64Array(n);
  const oldGen = new Int32Array(n);
  // HELLO.previous of the next session, and the network it ran on.
  const repInterval = new Float64Array(n);
  const repLived = new Float64Array(n);
  const repNet = new Int32Array(n).fill(-1);
  const repTimedOut = new Uint8Array(n);
  /** When the device gave the previous session up (HELLO's down time is measured from it). */
  const repEnd = new Float64Array(n);
  const lossEnd = new Float64Array(n);

  const q = new EventQueue();
  const ev = new Float64Array(4);
  const res: Result = { name: s.name, heartbeats: 0, backgroundHeartbeats: 0, natDrops: 0, sessions: 0, series: NETWORKS.map(() => []) };
  const countPings = (i: number, k: number) => {
    res.heartbeats += k;
    if (!sessFg[i]) res.backgroundHeartbeats += k;
  };

  for (let i = 0; i < n; i++) {
    const r = rand[i];
    home[i] = pick(CARRIERS, r());
    isp[i] = WIFI_BASE + pick(ISPS, r());
    net[i] = r() < 0.5 ? isp[i] : home[i] * CELL_KINDS.length + pick(CELL_KINDS, r());
    fg[i] = r() < FOREGROUND_DWELL / (FOREGROUND_DWELL + BACKGROUND_DWELL) ? 1 : 0;
    online[i] = 1;
    const first = T0 + r() * FIRST_CONNECT_SPREAD;
    q.push(first, i, Ev.CONNECT, 0);
    q.push(first - Math.log(1 - r()) * (net[i] >= WIFI_BASE ? WIFI_DWELL : CELL_DWELL), i, Ev.SWITCH, 0);
    q.push(T0 - Math.log(1 - r()) * LOSS_EVERY, i, Ev.LOSS, 0);
    q.push(T0 - Math.log(1 - r()) * (fg[i] ? FOREGROUND_DWELL : BACKGROUND_DWELL), i, Ev.FOREGROUND, 0);
  }
  if (p) q.push(T0, 0, Ev.SAMPLE, 0);

  /** The device's session ends (it knows); the gateway keeps it until HELLO or idle close. */
  const endSession = (i: number, now: number, timedOut: boolean, livedMs: number) => {
    if (!live[i]) return;
    live[i] = 0;
    if (!p) countPings(i, Math.floor((now - t0[i]) / interval[i]));
    repInterval[i] = interval[i];
    repLived[i] = livedMs;
    repTimedOut[i] = timedOut ? 1 : 0;
    repNet[i] = net[i];
    repEnd[i] = now;
    oldOpen[i] = 1;
    oldTag[i] = tag[i];
    oldSeen[i] = lastSeen[i];
    oldInterval[i] = interval[i];
    oldGen[i] = ++gen[i];
    // Out of coverage it cannot come back yet: the gateway may close the session first.
    if (!online[i]) q.push(oldSeen[i] + 2 * oldInterval[i] + GRACE_MS, i, Ev.IDLE, oldGen[i]);
  };
  const serverClose = (i: number, now: number) => {
    if (!oldOpen[i]) return;
    oldOpen[i] = 0;
    if (p) p.closed(oldTag[i], now - oldSeen[i], oldInterval[i], ids[i]);
  };
  const connect = (i: number, now: number) => {
    const nw = NETWORKS[net[i]];
    res.sessions++;
    // As handlers.ts: evidence from HELLO.previous, then advice, then the old session is replaced.
    if (p && repNet[i] >= 0) {
      const prev = NETWORKS[repNet[i]];
      const r: HeartbeatReport = { intervalMs: repInterval[i], timedOut: repTimedOut[i] === 1, livedMs: repLived[i] };
      p.report(prev.kind, prev.carrier, r, ids[i], repNet[i] === net[i], now - repEnd[i]);
    }
    let x: number;
    if (p) {
      tag[i] = p.open(nw.kind, nw.carrier, fg[i] === 1);
      x = p.intervalOf(tag[i]);
    } else {
      x = s.fixed(nw, fg[i] === 1);
    }
    serverClose(i, now);
    live[i] = 1;
    sessFg[i] = fg[i];
    t0[i] = lastSeen[i] = now;
    interval[i] = x;
    const g = ++gen[i];
    if (p) q.push(now + x, i, Ev.PING, g);
    else if (x >= nw.natMs) q.push(now + x, i, Ev.PING, g);
  };

  const sample = (now: number) => {
    for (let k = 0; k < NETWORKS.length; k++) res.series[k].push([now - T0, p!.adviceFor(NETWORKS[k].kind, NETWORKS[k].carrier)]);
  };

  let events = 0;
  let nextLog = T0 + 2 * HOUR;
  while (q.size > 0) {
    q.pop(ev);
    const now = ev[0];
    if (now >= END) break;
    clock.now = now;
    const i = ev[1];
    const type = ev[2];
    const g = ev[3];
    events++;
    if (now >= nextLog) {
      log(`${s.name}: ${((now - T0) / HOUR).toFixed(0)} h simulated, ${(events / 1e6).toFixed(1)} M events, ${((Date.now() - started) / 1000).toFixed(1)} s`);
      nextLog += 2 * HOUR;
    }
    const r = rand[i];
    switch (type) {
      case Ev.CONNECT:
        if (online[i] && !live[i]) connect(i, now);
        break;
      case Ev.PING: {
        if (g !== gen[i] || !live[i]) break;
        if (p) countPings(i, 1);
        const x = interval[i];
        const natDrop = x >= NETWORKS[net[i]].natMs;
        if (natDrop || !online[i]) {
          // Lost (the NAT forgot the mapping, or no coverage): the device gives up after the PONG timeout.
          if (online[i]) res.natDrops++;
          const at = now + PONG_TIMEOUT_MS;
          endSession(i, at, true, at - t0[i]);
          if (online[i]) q.push(at, i, Ev.CONNECT, 0);
          break;
        }
        const t = p!.ping(tag[i], now - lastSeen[i], x, ids[i], now);
        tag[i] = t;
        lastSeen[i] = now;
        const nx = p!.intervalOf(t);
        interval[i] = nx;
        q.push(now + nx, i, Ev.PING, g);
        break;
      }
      case Ev.SWITCH: {
        const wifi = net[i] >= WIFI_BASE;
        const lived = now - t0[i];
        if (live[i]) endSession(i, now, true, lived);
        net[i] = wifi ? home[i] * CELL_KINDS.length + pick(CELL_KINDS, r()) : isp[i];
        if (online[i]) connect(i, now);
        q.push(now - Math.log(1 - r()) * (wifi ? CELL_DWELL : WIFI_DWELL), i, Ev.SWITCH, 0);
        break;
      }
      case Ev.LOSS: {
        // Out of coverage for a while: a PING due meanwhile is lost and kills the session.
        const dur = MIN + r() * 19 * MIN;
        if (online[i]) {
          online[i] = 0;
          lossEnd[i] = now + dur;
          if (live[i] && !p) {
            const x = interval[i];
            const due = t0[i] + Math.ceil((now - t0[i]) / x) * x;
            if (due < lossEnd[i]) q.push(due, i, Ev.PING, gen[i]);
          }
          q.push(now + dur, i, Ev.LOSS_END, 0);
        }
        q.push(now + dur - Math.log(1 - r()) * LOSS_EVERY, i, Ev.LOSS, 0);
        break;
      }
      case Ev.LOSS_END:
        online[i] = 1;
        if (!live[i]) connect(i, now);
        break;
      case Ev.IDLE:
        if (oldOpen[i] && oldGen[i] === g) serverClose(i, now);
        break;
      case Ev.FOREGROUND:
        fg[i] ^= 1;
        q.push(now - Math.log(1 - r()) * (fg[i] ? FOREGROUND_DWELL : BACKGROUND_DWELL), i, Ev.FOREGROUND, 0);
        break;
      case Ev.SAMPLE:
        sample(now);
        q.push(now + 10 * MIN, 0, Ev.SAMPLE, 0);
        break;
    }
  }
  // Sessions still open at the end: their PINGs so far.
  if (!p) for (let i = 0; i < n; i++) if (live[i]) countPings(i, Math.floor((END - t0[i]) / interval[i]));
  if (p) sample(END);
  log(`${s.name}: done, ${(events / 1e6).toFixed(1)} M events in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return res;
}

// ---- report ----

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];

function className(nw: Network): string {
  return `${KIND_LABELS[nw.kind]}/${nw.carrier}`;
}

/** Each class's advised interval over time (solid) and its oracle value (dashed). */
function chart(series: number[][][]): string {
  const W = 960;
  const H = 540;
  const L = 60;
  const R = 220;
  const T = 40;
  const B = 50;
  const yMax = 50;
  const x = (ms: number) => L + (ms / (HOURS * HOUR)) * (W - L - R);
  const y = (ms: number) => T + (1 - ms / MIN / yMax) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-size="15">moor smart heartbeat: advised interval per class (solid) vs oracle (dashed), ${DEVICES.toLocaleString('en')} devices, seed ${SEED}</text>`,
  ];
  for (let m = 0; m <= yMax; m += 5) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(m * MIN)}" y2="${y(m * MIN)}" stroke="#eee"/><text x="${L - 8}" y="${y(m * MIN) + 4}" text-anchor="end">${m}</text>`);
  }
  for (let h = 0; h <= HOURS; h += Math.max(1, Math.round(HOURS / 12))) {
    out.push(`<text x="${x(h * HOUR)}" y="${H - B + 18}" text-anchor="middle">${h}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">hours</text>`);
  out.push(`<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">minutes</text>`);
  series.forEach((pts, k) => {
    const c = COLORS[k % COLORS.length];
    // Steps: an advice holds until the next sample.
    const d = pts.map(([t, v], j) => (j === 0 ? `M${x(t).toFixed(1)},${y(v).toFixed(1)}` : `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`)).join('');
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.6"/>`);
    const o = y(oracleMs(NETWORKS[k]));
    out.push(`<line x1="${L}" x2="${W - R}" y1="${o}" y2="${o}" stroke="${c}" stroke-dasharray="4 4" stroke-width="0.8"/>`);
    out.push(`<rect x="${W - R + 12}" y="${T + k * 18}" width="12" height="3" fill="${c}"/><text x="${W - R + 30}" y="${T + k * 18 + 5}">${className(NETWORKS[k])} (NAT ${NETWORKS[k].natMs / MIN} min)</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function main(): void {
  const started = Date.now();
  log(`${DEVICES} devices, ${HOURS} h, seed ${SEED}; NAT timeouts ${NETWORKS.map((nw) => `${className(nw)}=${nw.natMs / MIN}m`).join(' ')}`);
  // --trace: every class decision on stderr.
  const trace = process.argv.includes('--trace');
  const observer = {
    probe: () => {},
    change: (what: string, kind: number, carrier: string, from: number, to: number) => {
      if (trace) log(`${((clock.now - T0) / HOUR).toFixed(2)} h ${KIND_LABELS[kind]}/${carrier}: ${what} ${from / 1000} s -> ${to / 1000} s`);
    },
  };
  const policy = new HeartbeatPolicy(opts, () => clock.now, rng(SEED ^ 0x5eed), observer, 'bench');
  const strategies: Strategy[] = [
    { name: 'policy', policy, fixed: () => 0 },
    { name: 'fixed_60s', policy: null, fixed: () => 60_000 },
    { name: 'fixed_270s', policy: null, fixed: () => 270_000 },
    { name: 'oracle', policy: null, fixed: (nw, fg) => (fg ? opts.foregroundMs : oracleMs(nw)) },
  ];
  const results = strategies.map(simulate);
  const deviceHours = DEVICES * HOURS;
  const deviceDays = deviceHours / 24;
  const round = (v: number, d = 3) => Number(v.toFixed(d));
  const summary = Object.fromEntries(
    results.map((r) => [
      r.name,
      {
        heartbeats_per_device_hour: round(r.heartbeats / deviceHours),
        background_heartbeats_per_device_hour: round(r.backgroundHeartbeats / deviceHours),
        nat_drops_per_1000_device_days: round((r.natDrops / deviceDays) * 1000),
        nat_drops: r.natDrops,
        sessions: r.sessions,
      },
    ]),
  );
  const [pol, f60, , orc] = results;
  const vsFixed60 = f60.heartbeats / pol.heartbeats;
  const vsOracle = pol.heartbeats / orc.heartbeats;
  const dropExcess = ((pol.natDrops - orc.natDrops) / deviceDays) * 1000;
  const out = path.resolve(__dirname, '..', '..', 'bench', 'out');
  mkdirSync(out, { recursive: true });
  const svg = path.join(out, 'heartbeat.svg');
  writeFileSync(svg, chart(pol.series));
  log(`chart: ${svg}`);
  const classes = NETWORKS.map((nw, k) => ({
    class: className(nw),
    nat_ms: nw.natMs,
    oracle_ms: oracleMs(nw),
    final_ms: pol.series[k][pol.series[k].length - 1][1],
  }));
  const result = {
    bench: 'heartbeat',
    devices: DEVICES,
    hours: HOURS,
    seed: SEED,
    strategies: summary,
    targets: {
      fewer_heartbeats_than_fixed_60s: round(vsFixed60, 2),
      heartbeats_vs_oracle: round(vsOracle, 3),
      background_heartbeats_vs_oracle: round(pol.backgroundHeartbeats / orc.backgroundHeartbeats, 3),
      nat_drop_excess_per_1000_device_days: round(dropExcess),
      met: vsFixed60 >= 4 && vsOracle <= 1.3 && dropExcess <= 10,
    },
    classes,
    chart: 'bench/out/heartbeat.svg',
    elapsed_s: round((Date.now() - started) / 1000, 1),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
