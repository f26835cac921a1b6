// Your posts (drafts included), and the form that writes a new one or edits
// and deletes one of yours.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Field, useSubmit } from '../components/form';
import { When } from '../components/layout';
import type { PageProps } from '../routes';
import { navigate } from '../router';
import { usePaged } from '../paged';
import type { Post } from '../types';

export function YourPosts() {
  const { items: posts, loading, error, more } = usePaged<Post>('/users/me/posts', 50);
  return (
    <>
      <h1>Your posts</h1>
      <p>
        <a class="button" href="/write/new">
          Write a new post
        </a>
      </p>
      <ErrorBox error={error} />
      {!loading && !error && posts.length === 0 && <p>You have not written anything yet.</p>}
      {posts.length > 0 && (
        <ul class="posts">
          {posts.map((p) => (
            <li key={p.id}>
              <a href={`/write/${p.id}`}>{p.title}</a> {p.published ? <span class="badge ok">published</span> : <span class="badge">draft</span>}
              <span class="meta">
                {' '}
                · updated <When at={p.updated_at} />
              </span>
            </li>
          ))}
        </ul>
      )}
      {loading && <p class="loading">Loading…</p>}
      {more && (
        <button type="button" onClick={more}>
          More
        </button>
      )}
    </>
  );
}

const FIELDS = ['title', 'body', 'published'];

function PostForm({ post }: { post?: Post }) {
  const [title, setTitle] = useState(post?.title ?? '');
  const [body, setBody] = useState(post?.body ?? '');
  const [published, setPublished] = useState(post?.published ?? false);
  const save = useSubmit(async () => {
    const data = { title, body, published };
    const saved = post
      ? await api<Post>(`/posts/${post.id}`, { method: 'PATCH', body: data })
      : await api<Post>('/posts', { method: 'POST', body: data });
    navigate(`/blog/${saved.id}`);
  });
  const remove = useSubmit(async () => {
    if (!post || !confirm(`Delete “${post.title}”? This cannot be undone.`)) return;
    await api(`/posts/${post.id}`, { method: 'DELETE' });
    navigate('/write', { replace: true });
  });
  return (
    <form onSubmit={save.onSubmit} class="card">
      <ErrorBox error={save.error ?? remove.error} fields={FIELDS} />
      <Field label="Title" name="title" value={title} onInput={setTitle} required error={save.error} />
      <Field label="Text" name="body" value={body} onInput={setBody} multiline error={save.error} />
      <div class="field check">
        <input id="f-published" type="checkbox" checked={published} onChange={(e) => setPublished(e.currentTarget.checked)} />
        <label for="f-published">Published (anyone can read it; otherwise a draft only you see)</label>
      </div>
      <div class="actions">
        <button type="submit" disabled={save.busy}>
          {save.busy ? 'Saving…' : post ? 'Save' : 'Create post'}
        </button>
        {post && (
          <button type="button" class="danger" disabled={remove.busy} onClick={() => void remove.onSubmit()}>
            Delete
          </button>
        )}
      </div>
    </form>
  );
}

export function NewPost() {
  return (
    <>
      <h1>New post</h1>
      <PostForm />
    </>
  );
}

export function EditPost({ params }: PageProps) {
  const [post, setPost] = useState<Post | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<Post>(`/posts/${encodeURIComponent(params.id!)}`).then(setPost, setError);
  }, [params.id]);
  return (
    <>
      <h1>Edit post</h1>
      <ErrorBox error={error} />
      {post && <PostForm post={post} />}
    </>
  );
}
