// The API's shapes (docs/API.md), as the pages use them.
export interface User {
  id: string;
  username: string;
  email: string;
  full_name: string | null;
  role: 'user' | 'admin';
  disabled: boolean;
  /** A second factor is required at sign-in. */
  mfa: boolean;
  email_verified: boolean;
  created_at: string;
}

export interface MfaStatus {
  totp: boolean;
  recovery_codes_left: number;
  passkeys: number;
}

export interface Post {
  id: string;
  title: string;
  body: string;
  published: boolean;
  author: { id: string; username: string };
  created_at: string;
  updated_at: string;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Session {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
}

export interface Passkey {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
}
