// Types of build-web.mjs for the TypeScript tests that build the pages.
export const webSrc: string;
export const webOut: string;
export function webStale(): boolean;
export function buildWeb(opts?: { minify?: boolean }): Promise<{ assets: { name: string; bytes: number; gzip: number }[]; html: string }>;
export function newest(dir: string): number;
