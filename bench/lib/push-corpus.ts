/**
 * A deterministic corpus of push payloads for the compression bench and tests: JSON
 * notifications of varied shape (chat, orders, social, news, security, games, IoT,
 * marketing) and protobuf-encoded business messages (order, payment, sensor batch,
 * ride status), 100 B to 2 KiB of body, each wrapped in the PUSH payload the gateway
 * sends (id, topic, body, priority, times), which is what it compresses.
 *
 * Same seed, same bytes: every run of the bench measures the same messages.
 *
 * Each message also carries `entropyBits`: how much randomness the generator drew for
 * it (log2 of the choices: 4 bits per random hex digit, log2(n) per pick among n, ...).
 * No coder can do better on average than those bits (it would have to know the
 * generator), so the sum is the floor under any codec's output: the bench reports it
 * next to the codecs, with the frame header bytes zstd adds on top.
 */
import protobuf from 'protobufjs';
import { moor } from '../../src/protocol/generated/moor';

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const FIRST = ['Ana', 'Bo', 'Chen', 'Dara', 'Elif', 'Femi', 'Gus', 'Hana', 'Ines', 'Jun', 'Kai', 'Lena', 'Mo', 'Nia', 'Omar', 'Pia', 'Raj', 'Sofia', 'Tomás', 'Uma', 'Vik', 'Wen', 'Yara', 'Zoë'];
const LAST = ['Ito', 'Khan', 'Lopez', 'Martin', 'Novak', 'Okafor', 'Park', 'Rossi', 'Silva', 'Tanaka', 'Weber', 'Zhang'];
const WORDS = 'the a to and of in on for with at your new now today order ready meeting lunch photo video call later tomorrow thanks great see you soon please check update weekend plan dinner link file shared team project deadline review done sure okay maybe running late traffic home office coffee'.split(' ');
const CITIES = ['Berlin', 'Lagos', 'São Paulo', 'Osaka', 'Toronto', 'Mumbai', 'Madrid', 'Seoul', 'Nairobi', 'Austin'];
const PRODUCTS = ['Wireless earbuds', 'USB-C charger 65W', 'Running shoes', 'Coffee beans 1kg', 'Phone case', 'Desk lamp', 'Yoga mat', 'Backpack 30L', 'Smart plug', 'Water bottle'];
const CURRENCIES = ['EUR', 'USD', 'NGN', 'BRL', 'JPY', 'INR'];
const LOCALES = ['en-US', 'de-DE', 'pt-BR', 'ja-JP', 'fr-FR', 'es-ES'];

type R = () => number;
/** Bits of randomness drawn so far (see entropyBits): every helper below adds what it draws. */
let drawn = 0;
/** An index below n, uniformly. */
const which = (r: R, n: number): number => {
  drawn += Math.log2(n);
  return Math.floor(r() * n);
};
const pick = <T>(r: R, a: readonly T[]): T => a[which(r, a.length)];
const int = (r: R, lo: number, hi: number): number => {
  drawn += Math.log2(hi - lo + 1);
  return lo + Math.floor(r() * (hi - lo + 1));
};
/** true with probability p (one draw). */
const chance = (r: R, p: number): boolean => {
  const yes = r() < p;
  drawn -= Math.log2(yes ? p : 1 - p);
  return yes;
};
const hex = (r: R, n: number): string => {
  drawn += 4 * n;
  return Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
};
const words = (r: R, lo: number, hi: number): string => Array.from({ length: int(r, lo, hi) }, () => pick(r, WORDS)).join(' ');
const name = (r: R): string => `${pick(r, FIRST)} ${pick(r, LAST)}`;
const ts = (r: R): number => 1_735_000_000_000 + int(r, 0, 30 * 86_400_000);
const iso = (r: R): string => new Date(ts(r)).toISOString();

/** JSON notification shapes, as apps send them (field names stable, values varied). */
const JSON_SHAPES: Array<(r: R) => unknown> = [
  (r) => ({ type: 'chat.message', conversation_id: `c_${hex(r, 12)}`, message_id: `m_${hex(r, 16)}`, sender: { id: `u_${hex(r, 10)}`, name: name(r), avatar: `https://cdn.example.com/avatars/${hex(r, 8)}.jpg` }, text: words(r, 3, 40), sent_at: iso(r), badge: int(r, 1, 99) }),
  (r) => {
    const items = Array.from({ length: int(r, 1, 6) }, () => ({ sku: `SKU-${int(r, 10000, 99999)}`, title: pick(r, PRODUCTS), qty: int(r, 1, 4), price: { amount: int(r, 199, 19999), currency: pick(r, CURRENCIES) } }));
    return { type: 'order.status', order_id: `ord_${int(r, 1e6, 9e6)}`, status: pick(r, ['confirmed', 'packed', 'shipped', 'out_for_delivery', 'delivered']), carrier: pick(r, ['DHL', 'UPS', 'FedEx', 'Correios', 'Yamato']), tracking: `${hex(r, 4).toUpperCase()}${int(r, 1e8, 9e8)}`, eta: iso(r), items, deep_link: `shop://orders/${int(r, 1e6, 9e6)}` };
  },
  (r) => ({ type: pick(r, ['social.like', 'social.comment', 'social.follow', 'social.mention']), actor: { id: `u_${hex(r, 10)}`, name: name(r) }, target: { kind: pick(r, ['post', 'photo', 'story']), id: `p_${hex(r, 12)}` }, preview: words(r, 0, 25), count: int(r, 1, 500), created_at: iso(r) }),
  (r) => ({ type: 'news.alert', id: `n_${hex(r, 8)}`, category: pick(r, ['world', 'business', 'sport', 'tech', 'weather']), headline: words(r, 6, 14), summary: words(r, 15, 80), image: `https://img.example.com/${hex(r, 16)}.webp`, locale: pick(r, LOCALES), published_at: iso(r), ttl: 3600 }),
  (r) => ({ type: 'security.login', account_id: `a_${hex(r, 10)}`, device: pick(r, ['iPhone 15', 'Pixel 8', 'Galaxy S24', 'Chrome on Windows', 'Safari on macOS']), ip: `${int(r, 1, 223)}.${int(r, 0, 255)}.${int(r, 0, 255)}.${int(r, 1, 254)}`, location: pick(r, CITIES), at: iso(r), action_required: chance(r, 0.3), message: 'New sign-in to your account. If this was not you, secure your account now.' }),
  (r) => ({ type: 'game.event', game: pick(r, ['chess', 'words', 'racing']), match_id: `g_${hex(r, 10)}`, event: pick(r, ['your_turn', 'match_won', 'invite', 'tournament_start']), opponent: name(r), score: [int(r, 0, 50), int(r, 0, 50)], reward: { coins: int(r, 0, 500), xp: int(r, 0, 2000) }, expires_at: iso(r) }),
  (r) => ({ type: 'iot.telemetry', device_id: `dev-${hex(r, 8)}`, fw: `2.${int(r, 0, 9)}.${int(r, 0, 30)}`, readings: Array.from({ length: int(r, 2, 30) }, () => ({ t: ts(r), temp_c: int(r, -100, 400) / 10, rh: int(r, 100, 990) / 10, battery: int(r, 5, 100) })), alarm: chance(r, 0.1) ? 'temperature_high' : null }),
  (r) => ({ type: 'marketing.promo', campaign: `spring-${int(r, 2024, 2026)}-${pick(r, ['a', 'b', 'c'])}`, title: `${int(r, 10, 70)}% off ${pick(r, PRODUCTS)}`, body: words(r, 10, 60), cta: { label: pick(r, ['Shop now', 'See deals', 'Claim offer']), url: `https://shop.example.com/c/${hex(r, 6)}` }, locale: pick(r, LOCALES), segment: pick(r, ['new', 'active', 'lapsed', 'vip']) }),
];

const JSON_SHAPE_NAMES = ['chat', 'order', 'social', 'news', 'security', 'game', 'iot', 'promo'];

/** Business messages as backends encode them with protobuf. */
const PROTO = protobuf.parse(`
syntax = "proto3";
package biz;
message Money { int64 amount = 1; string currency = 2; }
message Item { string sku = 1; string title = 2; uint32 qty = 3; Money price = 4; }
message Address { string line1 = 1; string city = 2; string postcode = 3; string country = 4; }
message OrderEvent { string order_id = 1; string user_id = 2; uint32 status = 3; repeated Item items = 4; Money total = 5; Address ship_to = 6; uint64 at = 7; string note = 8; }
message PaymentEvent { string payment_id = 1; string order_id = 2; Money amount = 3; string method = 4; string last4 = 5; uint32 state = 6; uint64 at = 7; string descriptor = 8; }
message Reading { uint64 t = 1; sint32 value = 2; }
message SensorBatch { string device = 1; string kind = 2; repeated Reading readings = 3; uint32 seq = 4; }
message RideStatus { string ride_id = 1; string driver = 2; string vehicle = 3; string plate = 4; double lat = 5; double lng = 6; uint32 eta_s = 7; uint32 state = 8; }
`).root;
const T = (n: string): protobuf.Type => PROTO.lookupType(`biz.${n}`);
const money = (r: R) => ({ amount: int(r, 100, 500_000), currency: pick(r, CURRENCIES) });
const PROTO_SHAPE_NAMES = ['OrderEvent', 'PaymentEvent', 'SensorBatch', 'RideStatus'];
const PROTO_SHAPES: Array<(r: R) => Uint8Array> = [
  (r) =>
    T('OrderEvent')
      .encode({
        orderId: `ord_${int(r, 1e6, 9e6)}`,
        userId: `u_${hex(r, 10)}`,
        status: int(r, 1, 6),
        items: Array.from({ length: int(r, 1, 12) }, () => ({ sku: `SKU-${int(r, 10000, 99999)}`, title: pick(r, PRODUCTS), qty: int(r, 1, 5), price: money(r) })),
        total: money(r),
        shipTo: { line1: `${int(r, 1, 300)} ${pick(r, WORDS)} street`, city: pick(r, CITIES), postcode: String(int(r, 10000, 99999)), country: pick(r, ['DE', 'NG', 'BR', 'JP', 'US', 'IN']) },
        at: ts(r),
        note: chance(r, 0.3) ? words(r, 3, 20) : '',
      })
      .finish(),
  (r) => T('PaymentEvent').encode({ paymentId: `pay_${hex(r, 14)}`, orderId: `ord_${int(r, 1e6, 9e6)}`, amount: money(r), method: pick(r, ['card', 'pix', 'upi', 'sepa', 'wallet']), last4: String(int(r, 1000, 9999)), state: int(r, 1, 4), at: ts(r), descriptor: `EXAMPLE*${pick(r, PRODUCTS).toUpperCase()}` }).finish(),
  (r) => {
    const t0 = ts(r);
    return T('SensorBatch').encode({ device: `dev-${hex(r, 8)}`, kind: pick(r, ['temp', 'power', 'vibration']), readings: Array.from({ length: int(r, 8, 120) }, (_, i) => ({ t: t0 + i * 1000, value: int(r, -500, 5000) })), seq: int(r, 1, 1e6) }).finish();
  },
  (r) => T('RideStatus').encode({ rideId: `ride_${hex(r, 12)}`, driver: name(r), vehicle: pick(r, ['Toyota Prius', 'Kia Niro', 'VW ID.3', 'Honda Civic']), plate: `${hex(r, 3).toUpperCase()}-${int(r, 100, 999)}`, lat: int(r, -9e6, 9e6) / 1e5, lng: int(r, -18e6, 18e6) / 1e5, etaS: int(r, 30, 1800), state: int(r, 1, 5) }).finish(),
];

export interface CorpusMessage {
  kind: 'json' | 'proto';
  /** The JSON `type` family or the protobuf message name (e.g. `chat`, `SensorBatch`). */
  shape: string;
  /** Randomness the generator drew for this message (bits): a floor for any codec. */
  entropyBits: number;
  /** The push body. */
  body: Uint8Array;
  /** The PUSH payload the gateway compresses. */
  payload: Uint8Array;
}

/** Push ttl_s values backends use: an hour, a day, a week, 30 days. */
const TTLS_S = [3600, 86_400, 7 * 86_400, 30 * 86_400];

/** `n` messages with bodies of 100 B to 2 KiB; ~70% JSON, ~30% protobuf. */
export function pushCorpus(n: number, seed = 1): CorpusMessage[] {
  const r = rng(seed);
  const out: CorpusMessage[] = [];
  while (out.length < n) {
    const start = drawn;
    const json = chance(r, 0.7);
    const k = which(r, json ? JSON_SHAPES.length : PROTO_SHAPES.length);
    const shape = json ? JSON_SHAPE_NAMES[k] : PROTO_SHAPE_NAMES[k];
    const body = json ? Buffer.from(JSON.stringify(JSON_SHAPES[k](r))) : PROTO_SHAPES[k](r);
    if (body.length < 100 || body.length > 2048) continue;
    const seq = chance(r, 0.6) ? int(r, 1, 5_000_000) : 0;
    const id = `${hex(r, 8)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 12)}`;
    const topic = chance(r, 0.2) ? pick(r, ['news', 'promo', 'weather', 'sport']) : '';
    const priority = chance(r, 0.15) ? 1 : 0;
    // As the gateway stamps them (src/gateway/backend.ts): sent = now, expires = now + ttl_s (0: none).
    const ttlS = chance(r, 0.5) ? pick(r, TTLS_S) : 0;
    const sentAtMs = ts(r);
    const payload = moor.v1.Push.encode({ seq, id, topic, body, priority, expiresAtMs: ttlS > 0 ? sentAtMs + ttlS * 1000 : 0, sentAtMs }).finish();
    out.push({ kind: json ? 'json' : 'proto', shape, entropyBits: drawn - start, body, payload });
  }
  return out;
}
