// A keyset-paged list ({items, next_cursor}): the first page at mount, the next on `more()`.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import type { Page } from './types';

export function usePaged<T>(path: string, limit: number) {
  const [items, setItems] = useState<T[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const load = async (cursor?: string) => {
    setLoading(true);
    setError(null);
    try {
      const q = new URLSearchParams({ limit: String(limit) });
      if (cursor) q.set('cursor', cursor);
      const page = await api<Page<T>>(`${path}?${q}`);
      setItems((have) => (cursor ? [...have, ...page.items] : page.items));
      setNext(page.next_cursor);
    } catch (err) {
      setError(err);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => void load(), [path]);
  return { items, loading, error, more: next && !loading ? () => void load(next) : null };
}
