// The blog: published posts, newest first, a page at a time (next_cursor).
import { ErrorBox } from '../components/form';
import { When } from '../components/layout';
import { usePaged } from '../paged';
import type { Post } from '../types';

const PAGE = 10;

export function excerpt(body: string, max = 280): string {
  return body.length > max ? `${body.slice(0, max).trimEnd()}…` : body;
}

export function Blog() {
  const { items: posts, loading, error, more } = usePaged<Post>('/posts', PAGE);
  return (
    <>
      <h1>Blog</h1>
      <ErrorBox error={error} />
      {!loading && !error && posts.length === 0 && <p>No posts yet.</p>}
      <ol class="posts">
        {posts.map((p) => (
          <li key={p.id}>
            <article>
              <h2>
                <a href={`/blog/${p.id}`}>{p.title}</a>
              </h2>
              <p class="meta">
                by {p.author.username} · <When at={p.created_at} />
              </p>
              <p class="excerpt">{excerpt(p.body)}</p>
            </article>
          </li>
        ))}
      </ol>
      {loading && <p class="loading">Loading…</p>}
      {more && (
        <button type="button" onClick={more}>
          Older posts
        </button>
      )}
    </>
  );
}
