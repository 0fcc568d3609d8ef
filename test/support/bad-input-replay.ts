/** Sends one case of k6/lib/bad-inputs.js with node:http; its status and JSON answer (or null). */
import { request } from 'node:http';
import type { BadInput } from '../../k6/lib/bad-inputs.js';

export function replayBadInput(
  base: string,
  c: BadInput,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve) => {
    const body =
      c.body === null
        ? null
        : typeof c.body === 'string'
          ? Buffer.from(c.body)
          : Buffer.from(c.body);
    const headers: Record<string, string | number> = { ...c.headers };
    if (body !== null) headers['content-length'] = body.length;
    const req = request(base + c.path, { method: c.method, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON: the caller's check reports it
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', () => resolve({ status: 0, json: null }));
    req.end(body ?? undefined);
  });
}
