// Which component draws each page of paths.ts. `signedIn: true` pages send a
// signed-out visitor to /signin?next=… first.
import type { ComponentType } from 'preact';
import type { PagePath } from './paths';
import type { Params } from './router';
import { Account } from './pages/account';
import { Blog } from './pages/blog';
import { EditPost, NewPost, YourPosts } from './pages/write';
import { PostPage } from './pages/post';
import { SignIn } from './pages/signin';
import { SignUp } from './pages/signup';

export interface PageProps {
  params: Params;
  query: URLSearchParams;
}

export interface Route {
  title: string;
  page: ComponentType<PageProps>;
  signedIn?: boolean;
}

export const ROUTES: Record<PagePath, Route> = {
  '/': { title: 'Blog', page: Blog },
  '/blog/:id': { title: 'Post', page: PostPage },
  '/signin': { title: 'Sign in', page: SignIn },
  '/signup': { title: 'Sign up', page: SignUp },
  '/write': { title: 'Your posts', page: YourPosts, signedIn: true },
  '/write/new': { title: 'New post', page: NewPost, signedIn: true },
  '/write/:id': { title: 'Edit post', page: EditPost, signedIn: true },
  '/account': { title: 'Account', page: Account, signedIn: true },
};
