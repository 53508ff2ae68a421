/** Raw HTTP/1.1 exchanges on one keep-alive connection, for what fetch hides. */
import net from 'node:net';

/**
 * Sends `requests` one after another on one keep-alive connection; resolves each raw
 * response head (and body; none for HEAD, 204 and 304). A wrong Content-Length on a
 * body-less answer would swallow the next response, so the second one never arrives.
 */
export function keepAlive(port: number, requests: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    const out: string[] = [];
    let buf = '';
    const next = () => c.write(requests[out.length]);
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`timed out after ${out.length} of ${requests.length} responses: ${JSON.stringify(out)} + ${JSON.stringify(buf)}`));
    }, 3000);
    c.on('connect', next);
    c.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.slice(0, end);
      const len = /content-length: (\d+)/i.exec(head);
      const bodyless = /^HTTP\/1\.1 (204|304)/.test(head) || requests[out.length].startsWith('HEAD ');
      const total = end + 4 + (len && !bodyless ? Number(len[1]) : 0);
      if (buf.length < total) return;
      out.push(buf.slice(0, total));
      buf = buf.slice(total);
      if (out.length === requests.length) {
        clearTimeout(timer);
        c.end();
        resolve(out);
      } else next();
    });
    c.on('error', reject);
  });
}
