// The one list of pages: the client's router matches these in order, and the
// build writes them to dist/web/pages.json, the paths the service answers
// with index.html (any other unknown path stays a 404 problem). Plain data,
// no imports: the build reads this file on its own. Adding a page: a path
// here and its component in routes.ts (the type checker insists on both).
export const PATHS = [
  '/',
  '/blog/:id',
  '/signin',
  '/signup',
  '/write',
  '/write/new',
  '/write/:id',
  '/account',
] as const;

export type PagePath = (typeof PATHS)[number];
