// Requests held open on purpose, so that a test creates the condition it
// checks instead of hoping a race goes its way: the headers and all of the
// body but its last byte are sent, and the request stays in flight until the
// test calls finish(). `received` resolves only once the server has parsed
// the headers and dispatched the request to the application (node answers
// `Expect: 100-continue` with 100 Continue right before it emits 'request').
import { request as httpRequest, type Agent } from 'node:http';
import { connect } from 'node:net';
import type { Res } from './http-client.js';

export interface HeldAnswer extends Res {
  /** The socket error's code (ECONNRESET, …) when there was no answer (then status is 0). */
  error?: string;
  /** performance.now() when the answer (or the error) arrived. */
  at: number;
}

export interface HeldRequest {
  /** Resolves once the server has the request; rejects if it answered or failed first. */
  received: Promise<void>;
  /** Sends the last byte of the body; resolves with the answer (never rejects). */
  finish(): Promise<HeldAnswer>;
}

/** `agent`: send it on a kept-alive connection of that agent (default: a connection of its own, closed after). */
export function holdRequest(base: string, path: string, contentType: string, body: string, agent: Agent | false = false): HeldRequest {
  const { hostname, port } = new URL(base);
  const bytes = Buffer.from(body);
  if (bytes.length < 2) throw new Error('a held request needs a body of two bytes or more');
  const req = httpRequest({
    host: hostname,
    port,
    method: 'POST',
    path,
    agent,
    headers: { 'content-type': contentType, 'content-length': bytes.length, expect: '100-continue' },
  });
  const answer = new Promise<HeldAnswer>((resolve) => {
    const failed = (err: Error) =>
      resolve({ status: 0, error: String((err as NodeJS.ErrnoException).code ?? err.message), headers: new Headers(), body: undefined, text: '', at: performance.now() });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('error', failed);
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, String(v));
        const body: unknown = text && /json/.test(headers.get('content-type') ?? '') ? JSON.parse(text) : undefined;
        resolve({ status: res.statusCode ?? 0, headers, body, text, at: performance.now() });
      });
    });
    req.on('error', failed);
  });
  const received = new Promise<void>((resolve, reject) => {
    req.on('continue', () => {
      req.write(bytes.subarray(0, -1));
      resolve();
    });
    void answer.then((a) => reject(new Error(`answered before the body was complete: ${a.status || a.error} ${a.text}`)));
  });
  received.catch(() => {}); // callers await it; never an unhandled rejection
  req.flushHeaders();
  return {
    received,
    finish: () => {
      req.end(bytes.subarray(-1));
      return answer;
    },
  };
}

/** Holds `n` POSTs open (form-encoded, or JSON for `json`); resolves once the server has received every one. */
export async function holdPosts(base: string, path: string, bodies: Array<{ form: Record<string, string> } | { json: unknown }>): Promise<HeldRequest[]> {
  const held = bodies.map((b) =>
    'form' in b
      ? holdRequest(base, path, 'application/x-www-form-urlencoded', new URLSearchParams(b.form).toString())
      : holdRequest(base, path, 'application/json', JSON.stringify(b.json)),
  );
  await Promise.all(held.map((h) => h.received));
  return held;
}

/** Holds `n` identical form-encoded POSTs open. */
export const holdForms = (base: string, path: string, form: Record<string, string>, n: number) =>
  holdPosts(base, path, Array.from({ length: n }, () => ({ form })));

/** Finishes every held request in the same tick, so they reach the service together. */
export const finishAll = (held: HeldRequest[]) => Promise.all(held.map((h) => h.finish()));

/** Resolves once nothing accepts connections on the port any more (the server closed its listener). */
export async function untilRefused(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.on('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', (err) => resolve((err as NodeJS.ErrnoException).code === 'ECONNREFUSED'));
    });
    if (refused) return;
    if (Date.now() > end) throw new Error(`port ${port} still accepts connections after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
