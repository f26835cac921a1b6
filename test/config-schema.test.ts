// The configuration schema (src/config.ts ENV) and the README's
// configuration table describe the same variables with the same defaults.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ENV } from '../src/config.js';

interface Row {
  names: string[];
  defaults: string[];
}

function readmeRows(): Row[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1));
  return section
    .split('\n')
    .filter((l) => /^\| `[A-Z_]+`/.test(l))
    .map((l) => {
      const [names = '', defaults = ''] = l.split('|').slice(1).map((c) => c.trim());
      return { names: [...names.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!), defaults: defaults.split(' / ').map((d) => d.trim()) };
    });
}

const schema = ENV.properties as Record<string, { default?: unknown; description?: string; internal?: boolean }>;

test('every variable in the schema is in the README table and the other way round', () => {
  const documented = readmeRows().flatMap((r) => r.names).sort();
  const declared = Object.keys(schema).filter((n) => !schema[n]!.internal).sort();
  assert.deepEqual(documented, declared);
});

test('every variable has a description, and the README states the schema defaults', () => {
  for (const [name, s] of Object.entries(schema)) assert.ok(s.description, `${name} has a description`);
  let compared = 0;
  for (const row of readmeRows()) {
    // Rows naming several variables give one default each, in order ("`8` / `128` / `3`").
    if (row.defaults.length !== row.names.length) continue;
    row.names.forEach((name, i) => {
      const fallback = schema[name]!.default;
      if (typeof fallback !== 'number' && typeof fallback !== 'string' && typeof fallback !== 'boolean') return;
      assert.equal(row.defaults[i], `\`${String(fallback)}\``, `README default of ${name}`);
      compared++;
    });
  }
  assert.ok(compared >= 20, `compared ${compared} defaults`);
});
