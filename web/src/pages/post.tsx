// One post (a draft too, to its author).
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox } from '../components/form';
import { When } from '../components/layout';
import type { PageProps } from '../routes';
import { useMe } from '../session';
import type { Post } from '../types';

export function PostPage({ params }: PageProps) {
  const me = useMe();
  const [post, setPost] = useState<Post | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<Post>(`/posts/${encodeURIComponent(params.id!)}`).then(setPost, setError);
  }, [params.id]);
  if (error) {
    return (
      <>
        <h1>Post</h1>
        <ErrorBox error={error} />
        <p>
          <a href="/">Back to the blog</a>
        </p>
      </>
    );
  }
  if (!post) return <p class="loading">Loading…</p>;
  return (
    <article>
      <h1>{post.title}</h1>
      <p class="meta">
        by {post.author.username} · <When at={post.created_at} />
        {!post.published && <span class="badge">draft</span>}
      </p>
      <div class="body">{post.body}</div>
      {me?.id === post.author.id && (
        <p>
          <a class="button" href={`/write/${post.id}`}>
            Edit
          </a>
        </p>
      )}
    </article>
  );
}
