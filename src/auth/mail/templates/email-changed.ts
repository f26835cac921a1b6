import { escapeHtml, htmlFrame, textSignature, type MailContext, type RenderedMail } from './layout.js';

/** To the OLD address when the account moves to a new one: nobody moves an account silently. */
export function emailChangedMail(ctx: MailContext, v: { username: string; newEmail: string }): RenderedMail {
  const subject = `The email address of your ${ctx.product} account was changed`;
  const text = `Hello ${v.username},

The email address of your ${ctx.product} account was changed from this
address to ${v.newEmail}.

If this was not you, someone else knows your password: reset it
(${ctx.publicUrl}/reset-password) and contact the administrator.
${textSignature(ctx)}`;
  const html = htmlFrame(
    ctx,
    subject,
    `<p>Hello ${escapeHtml(v.username)},</p>
<p>The email address of your ${escapeHtml(ctx.product)} account was changed from this address to <b>${escapeHtml(v.newEmail)}</b>.</p>
<p>If this was not you, someone else knows your password: <a href="${escapeHtml(`${ctx.publicUrl}/reset-password`)}">reset it</a> and contact the administrator.</p>`,
  );
  return { subject, text, html, links: [] };
}
