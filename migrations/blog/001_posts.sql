-- Blog posts. Timestamps come from the application's clock, never now().
CREATE TABLE posts (
  id         uuid PRIMARY KEY,
  author_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
  body       text NOT NULL CHECK (char_length(body) <= 100000),
  published  boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
-- GET /posts: published posts, newest first, keyset on (created_at, id).
CREATE INDEX posts_published_created_id_idx ON posts (created_at, id) WHERE published;
-- GET /posts?author= and GET /users/me/posts (and the cascade from users).
CREATE INDEX posts_author_created_id_idx ON posts (author_id, created_at, id);
