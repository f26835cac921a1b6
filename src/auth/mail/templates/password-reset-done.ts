import { escapeHtml, htmlFrame, textSignature, type MailContext, type RenderedMail } from './layout.js';

/** The notice after a reset: if it was not the owner, they learn of it. */
export function passwordResetDoneMail(ctx: MailContext, v: { username: string }): RenderedMail {
  const subject = `Your ${ctx.product} password was changed`;
  const text = `Hello ${v.username},

The password of your ${ctx.product} account was just reset with a link
mailed to this address, and every session was signed out.

If this was not you, reset your password again at once
(${ctx.publicUrl}/reset-password) and check who can read this mailbox.
${textSignature(ctx)}`;
  const html = htmlFrame(
    ctx,
    subject,
    `<p>Hello ${escapeHtml(v.username)},</p>
<p>The password of your ${escapeHtml(ctx.product)} account was just reset with a link mailed to this address, and every session was signed out.</p>
<p>If this was not you, <a href="${escapeHtml(`${ctx.publicUrl}/reset-password`)}">reset your password again</a> at once and check who can read this mailbox.</p>`,
  );
  return { subject, text, html, links: [] };
}
