/**
 * The raw TCP listener with TLS (node:tls), shared between workers by node:cluster.
 *
 * Why a front instead of one tls.Server: node's `ticketKeys` holds ONE key (48 bytes),
 * and a ticket whose key name differs from it is silently turned into a full handshake
 * (node's ticket-key callback returns 0), so one context cannot accept the previous
 * key after a rotation. node:tls has no public hook for a custom ticket-key callback,
 * and the session-store events (newSession/resumeSession) are a stateful cache that
 * would need sharing across workers and hosts. Instead the front accepts plain sockets,
 * reads the ClientHello (client-hello.ts), and hands the socket to the tls.Server whose
 * key made the offered ticket: one per key, current and previous. New clients and
 * unknown tickets go to the current key. Tickets stay stateless and work on every
 * worker and every host that has the keys.
 *
 * The front also turns plaintext clients away before OpenSSL sees them: a connection
 * whose first byte is not a TLS handshake record is closed at once (HTTP gets a 400).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { TCP_PREFACE } from '../protocol/constants';
import { MAX_SNIFF_BYTES, scanClientHello } from './client-hello';
import type { PemPair } from './pem';
import { keyId, keyName, sessionTimeoutS, type TicketKeySet } from './ticket-keys';

/** Same session id context on every worker and host: OpenSSL refuses sessions across contexts. */
const SESSION_ID_CONTEXT = 'moor/1';
const HTTP_400_BODY = 'this port speaks moor/1 over TLS, not plain HTTP\n';
const HTTP_400 = `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ${HTTP_400_BODY.length}\r\n\r\n${HTTP_400_BODY}`;
/** How long a turned-away HTTP client may take to read its 400. */
const LINGER_MS = 1_000;

export interface TlsTcpOptions {
  pem: PemPair;
  keys: TicketKeySet;
  /** tls.ticket_rotate_s: tickets are good for two periods. */
  rotateS: number;
  /** limits.handshake_timeout_ms, read at each connection (it reloads live). */
  handshakeTimeoutMs: () => number;
  log: Logger;
  /** A completed TLS connection: becomes a session (transport-tcp.ts acceptTcp). */
  secure(sock: tls.TLSSocket): void;
}

/** Counters since start, per worker. */
export interface TlsTcpStats {
  full: number;
  resumed: number;
  /** Routed to the previous key's context. */
  previousKey: number;
  plaintext: number;
  failed: number;
}

interface KeyedServer {
  name: string;
  key: Buffer;
  server: tls.Server;
  fingerprint: string;
}

/** Per-socket state while the ClientHello is read, on the socket (no closure per connection). */
interface Sniffing extends net.Socket {
  moorFront: TlsTcpFront;
  moorHello: Buffer | null;
}

function onSniffData(this: Sniffing, chunk: Buffer): void {
  const buf = this.moorHello === null ? chunk : Buffer.concat([this.moorHello, chunk]);
  const scan = scanClientHello(buf);
  if (scan.kind === 'more' && buf.length < MAX_SNIFF_BYTES) {
    this.moorHello = buf;
    return;
  }
  this.moorHello = null;
  this.removeListener('data', onSniffData);
  this.removeListener('timeout', onSniffTimeout);
  this.setTimeout(0);
  const front = this.moorFront;
  if (scan.kind === 'not-tls') {
    front.stats.plaintext++;
    // Looks like HTTP (an uppercase ASCII letter, and not the moor/1 preface): say why, then go.
    if (buf[0] >= 0x41 && buf[0] <= 0x5a && buf[0] !== TCP_PREFACE[0]) {
      this.end(HTTP_400);
      setTimeout(() => this.destroy(), LINGER_MS).unref();
    } else {
      this.destroy();
    }
    return;
  }
  this.pause();
  this.unshift(buf);
  front.handOver(this, scan.kind === 'hello' ? scan.names : []);
}

function onSniffTimeout(this: Sniffing): void {
  this.moorFront.stats.failed++;
  this.destroy();
}

function ignoreError(): void {
  // 'close' follows; a reset before the hello is nobody's business.
}

export class TlsTcpFront {
  /** Listen on this one (through node:cluster, like the plain TCP server). */
  readonly server: net.Server;
  readonly stats: TlsTcpStats = { full: 0, resumed: 0, previousKey: 0, plaintext: 0, failed: 0 };
  private pem: PemPair;
  private keys: TicketKeySet;
  /** By key name (hex): the current key's server and the previous one's. */
  private byName = new Map<string, KeyedServer>();
  private current!: KeyedServer;

  constructor(private readonly o: TlsTcpOptions) {
    this.pem = o.pem;
    this.keys = o.keys;
    this.rebuild();
    this.server = net.createServer({ noDelay: true }, (socket) => {
      const sock = socket as Sniffing;
      sock.moorFront = this;
      sock.moorHello = null;
      sock.on('error', ignoreError);
      sock.on('data', onSniffData);
      sock.setTimeout(this.o.handshakeTimeoutMs(), onSniffTimeout);
    });
  }

  /** New ticket keys from the primary: the old current becomes the previous. */
  setKeys(keys: TicketKeySet): void {
    if (keys.generation <= this.keys.generation) return;
    this.keys = keys;
    this.rebuild();
    this.o.log.info({ key: keyId(keys.current), previous: keyId(keys.previous) }, 'tls tcp ticket keys updated');
  }

  /** A renewed certificate: new handshakes use it, live connections keep theirs. */
  setPem(pem: PemPair): boolean {
    if (pem.fingerprint === this.pem.fingerprint) return false;
    this.pem = pem;
    this.rebuild();
    return true;
  }

  /** Called by the sniffer with the socket paused and its hello unshifted. */
  handOver(sock: net.Socket, names: Buffer[]): void {
    let target = this.current;
    for (const n of names) {
      const s = this.byName.get(n.toString('hex'));
      if (s !== undefined) {
        target = s;
        break;
      }
    }
    if (target !== this.current) this.stats.previousKey++;
    target.server.emit('connection', sock);
  }

  private contextOptions(key: Buffer): tls.SecureContextOptions & tls.TlsOptions {
    return {
      cert: this.pem.cert,
      key: this.pem.key,
      ticketKeys: key,
      sessionTimeout: sessionTimeoutS(this.o.rotateS),
      sessionIdContext: SESSION_ID_CONTEXT,
      minVersion: 'TLSv1.2',
    };
  }

  /** One tls.Server per accepted key; kept when only the other key changed. */
  private rebuild(): void {
    const wanted = [this.keys.current, ...(this.keys.previous ? [this.keys.previous] : [])];
    const next = new Map<string, KeyedServer>();
    for (const key of wanted) {
      const name = keyName(key);
      let ks = this.byName.get(name);
      if (ks?.key.equals(key)) {
        if (ks.fingerprint !== this.pem.fingerprint) {
          ks.server.setSecureContext(this.contextOptions(key));
          ks.fingerprint = this.pem.fingerprint;
        }
      } else {
        ks = { name, key, server: this.createServer(key), fingerprint: this.pem.fingerprint };
      }
      next.set(name, ks);
    }
    this.byName = next;
    this.current = next.get(keyName(this.keys.current)) as KeyedServer;
  }

  private createServer(key: Buffer): tls.Server {
    const server = tls.createServer({ ...this.contextOptions(key), handshakeTimeout: this.o.handshakeTimeoutMs() }, (sock) => {
      if (sock.isSessionReused()) this.stats.resumed++;
      else this.stats.full++;
      this.o.secure(sock);
    });
    server.on('tlsClientError', (_err, sock) => {
      // A broken or timed-out handshake: OpenSSL has answered with an alert if it could.
      this.stats.failed++;
      sock.destroy();
    });
    return server;
  }
}
