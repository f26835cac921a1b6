// The blog: public reading, writing under `posts:write`, moderation under `admin`.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { AuthError, insufficientScope, notFound as notFoundError } from '../auth/errors.js';
import { principalOf, type Principal } from '../auth/guard.js';
import { isUuid } from '../auth/ids.js';
import { normalizeUsername } from '../auth/users.js';
import { bodyErrors, guarded as guardAnswers, problem, unavailable } from '../http/openapi.js';
import { PageQuery, pageRequest } from '../http/pagination.js';
import { createPost, deletePost, findPost, listPosts, postExists, toPublicPost, updatePost, userIdByUsername } from './queries.js';

export const TITLE_MAX = 200;
export const BODY_MAX = 100_000;

export const Post = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    title: Type.String(),
    body: Type.String(),
    published: Type.Boolean(),
    author: Type.Object({ id: Type.String({ format: 'uuid' }), username: Type.String() }),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { description: 'A post' },
);

const PostPage = Type.Object(
  {
    items: Type.Array(Post),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
  },
  { description: 'One page of posts, newest first' },
);

const Title = Type.String({ minLength: 1, maxLength: TITLE_MAX, description: `1–${TITLE_MAX} characters` });
const Body = Type.String({ maxLength: BODY_MAX, description: `Up to ${BODY_MAX} characters` });

const PostId = Type.Object({ id: Type.String({ description: 'The post id (a UUID)' }) });

const notFound = () => notFoundError('Post not found');
/** The guard's answers, for the documentation of protected routes. */
const guarded = { ...guardAnswers('The token lacks a needed scope (insufficient_scope), or the post is not yours'), ...unavailable };

export const postRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { db, clock } = core;

  /** The rule for editing and deleting: the author, or a token with scope admin. */
  const editor = (p: Principal) => ({ userId: p.userId, anyAuthor: p.scopes.includes('admin') });

  /** After a write matched nothing: the post is missing (404) or someone else's (403). */
  async function refusal(id: string, p: Principal): Promise<AuthError> {
    if (!(await postExists(db, id))) return notFound();
    // An admin whose token lacks the scope could get it: say which one.
    if (p.role === 'admin') return insufficientScope(['posts:write', 'admin']);
    return new AuthError('forbidden', 'Only the author of a post may change it');
  }

  app.get(
    '/posts',
    {
      schema: {
        tags: ['posts'],
        summary: 'Published posts, newest first',
        querystring: Type.Object({
          ...PageQuery,
          author: Type.Optional(Type.String({ maxLength: 256, description: "Only this user's posts (username)" })),
        }),
        response: { 200: PostPage, 422: problem('Invalid limit or cursor') },
      },
    },
    async (request) => {
      const { author } = request.query;
      let authorId: string | undefined;
      if (author !== undefined) {
        authorId = await userIdByUsername(db, normalizeUsername(author));
        if (!authorId) return { items: [], next_cursor: null };
      }
      return listPosts(db, { ...pageRequest(request.query), authorId });
    },
  );

  app.get(
    '/posts/:id',
    {
      config: { auth: { optional: true } },
      schema: {
        tags: ['posts'],
        summary: 'One post; a draft only to its author or a token with scope admin',
        params: PostId,
        response: { 200: Post, 401: guarded[401], 404: problem('No such post (or a draft you may not see)') },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!isUuid(id)) throw notFound();
      const post = await findPost(db, id);
      if (!post) throw notFound();
      if (!post.published) {
        const p = request.principal;
        // A draft is nobody else's business: 404, as if it did not exist.
        if (!p || (p.userId !== post.author_id && !p.scopes.includes('admin'))) throw notFound();
      }
      return toPublicPost(post);
    },
  );

  app.post(
    '/posts',
    {
      config: { auth: { scopes: ['posts:write'] } },
      schema: {
        tags: ['posts'],
        summary: 'Write a post (a draft unless published is true)',
        body: Type.Object(
          { title: Title, body: Body, published: Type.Optional(Type.Boolean({ default: false })) },
          { additionalProperties: false },
        ),
        response: { 201: Post, ...guarded, ...bodyErrors },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const { title, body, published = false } = request.body;
      const post = await createPost(db, { authorId: me.userId, title, body, published, now: new Date(clock.now()) });
      return reply.code(201).send(toPublicPost(post));
    },
  );

  app.patch(
    '/posts/:id',
    {
      config: { auth: { scopes: ['posts:write'] } },
      schema: {
        tags: ['posts'],
        summary: 'Edit a post: its author, or an admin with scope admin',
        params: PostId,
        body: Type.Object(
          { title: Type.Optional(Title), body: Type.Optional(Body), published: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: {
          200: Post,
          ...guarded,
          ...bodyErrors,
          404: problem('No such post'),
        },
      },
    },
    async (request) => {
      const me = principalOf(request);
      const { id } = request.params;
      if (!isUuid(id)) throw notFound();
      const post = await updatePost(db, id, editor(me), request.body, new Date(clock.now()));
      if (!post) throw await refusal(id, me);
      return toPublicPost(post);
    },
  );

  app.delete(
    '/posts/:id',
    {
      config: { auth: { scopes: ['posts:write'] } },
      schema: {
        tags: ['posts'],
        summary: 'Delete a post: its author, or an admin with scope admin',
        params: PostId,
        response: { 204: Type.Null({ description: 'Deleted' }), ...guarded, 404: problem('No such post') },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const { id } = request.params;
      if (!isUuid(id)) throw notFound();
      if (!(await deletePost(db, id, editor(me)))) throw await refusal(id, me);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/users/me/posts',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['posts'],
        summary: 'Your posts, drafts included, newest first',
        querystring: Type.Object(PageQuery),
        response: { 200: PostPage, ...guarded, 422: problem('Invalid limit or cursor') },
      },
    },
    async (request) => {
      const me = principalOf(request);
      return listPosts(db, { ...pageRequest(request.query), authorId: me.userId, includeDrafts: true });
    },
  );
};
