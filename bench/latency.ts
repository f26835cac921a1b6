// npm run bench:latency -- http://127.0.0.1:8000
// Sequential (one at a time) latency of a login and of GET /users/me against
// a running service: what one user feels, not what the service sustains.
const base = process.argv[2] ?? 'http://127.0.0.1:8000';
const username = `lat${Date.now() % 1_000_000}`;
const password = 'plum-Anchor-47-velvet';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!.toFixed(2);

await fetch(`${base}/auth/register`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username, email: `${username}@example.com`, password }),
});
const logins: number[] = [];
let token = '';
for (let i = 0; i < 30; i++) {
  const t = performance.now();
  const r = await fetch(`${base}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }),
  });
  token = ((await r.json()) as { access_token: string }).access_token;
  logins.push(performance.now() - t);
}
const mes: number[] = [];
for (let i = 0; i < 1000; i++) {
  const t = performance.now();
  await (await fetch(`${base}/users/me`, { headers: { authorization: `Bearer ${token}` } })).text();
  mes.push(performance.now() - t);
}
console.log(`login: p50 ${pct(logins, 0.5)} ms, p99 ${pct(logins, 0.99)} ms (30 sequential)`);
console.log(`GET /users/me: p50 ${pct(mes, 0.5)} ms, p99 ${pct(mes, 0.99)} ms (1000 sequential)`);
