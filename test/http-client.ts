// A tiny fetch client for tests and the bench: JSON or form bodies, bearer
// tokens, parsed answers.
export interface Res<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A tiny fetch wrapper: JSON or form bodies, bearer tokens, parsed answers. */
export class HttpClient {
  constructor(readonly base: string) {}

  async request<T = any>(
    method: string,
    path: string,
    opts: { json?: unknown; form?: Record<string, string>; token?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<Res<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | undefined = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(opts.form).toString();
    }
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const r = await fetch(this.base + path, { method, headers, body });
    const text = await r.text();
    let parsed: unknown = undefined;
    if (text && /json/.test(r.headers.get('content-type') ?? '')) parsed = JSON.parse(text);
    return { status: r.status, headers: r.headers, body: parsed as T, text };
  }

  get<T = any>(path: string, token?: string) {
    return this.request<T>('GET', path, { token });
  }
  post<T = any>(path: string, json?: unknown, token?: string) {
    return this.request<T>('POST', path, { json, token });
  }
  patch<T = any>(path: string, json: unknown, token?: string) {
    return this.request<T>('PATCH', path, { json, token });
  }
  put<T = any>(path: string, json: unknown, token?: string) {
    return this.request<T>('PUT', path, { json, token });
  }
  delete<T = any>(path: string, token?: string) {
    return this.request<T>('DELETE', path, { token });
  }
  /** POST /auth/token, form-encoded as OAuth clients send it. */
  token<T = any>(form: Record<string, string>, headers?: Record<string, string>) {
    return this.request<T>('POST', '/auth/token', { form, headers });
  }
}
