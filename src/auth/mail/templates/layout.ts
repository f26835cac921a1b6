// What every mail shares: the escaping of values, the HTML frame and the
// signature. Each mail is a file of this folder: change the wording there.
export interface MailContext {
  /** The product's name, as the mails call it. */
  product: string;
  /** PUBLIC_URL, without a trailing slash. */
  publicUrl: string;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
  links: string[];
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Every value put into HTML goes through this. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** PUBLIC_URL + a page path + `#token=…`: the fragment never reaches a server log or a Referer. */
export function tokenLink(ctx: MailContext, path: string, token: string): string {
  return `${ctx.publicUrl}${path}#token=${encodeURIComponent(token)}`;
}

/** The HTML part: `body` is already-escaped HTML. */
export function htmlFrame(ctx: MailContext, title: string, body: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body style="font-family: system-ui, sans-serif; line-height: 1.5; color: #222; max-width: 36em">
${body}
<p style="color: #666; font-size: 0.9em">— ${escapeHtml(ctx.product)}, <a href="${escapeHtml(ctx.publicUrl)}">${escapeHtml(ctx.publicUrl)}</a></p>
</body></html>
`;
}

export function textSignature(ctx: MailContext): string {
  return `\n-- \n${ctx.product}, ${ctx.publicUrl}\n`;
}

/** A link as a button, and the token itself for those who paste it. */
export function htmlAction(link: string, label: string, token: string): string {
  return `<p><a href="${escapeHtml(link)}" style="display: inline-block; padding: 0.5em 1em; background: #1a56db; color: #fff; text-decoration: none; border-radius: 4px">${escapeHtml(label)}</a></p>
<p>Or open <a href="${escapeHtml(link)}">${escapeHtml(link)}</a><br>
or enter this code: <code>${escapeHtml(token)}</code></p>`;
}
