import { escapeHtml, htmlAction, htmlFrame, textSignature, tokenLink, type MailContext, type RenderedMail } from './layout.js';

/** The reset link, mailed on request. */
export function passwordResetMail(ctx: MailContext, v: { username: string; token: string; minutes: number }): RenderedMail {
  const link = tokenLink(ctx, '/reset-password', v.token);
  const subject = `Reset your ${ctx.product} password`;
  const text = `Hello ${v.username},

Someone (we hope you) asked to reset the password of your ${ctx.product} account.
To choose a new password, open this link within ${v.minutes} minutes:

${link}

or enter this code on the reset page: ${v.token}

The link works once. If you did not ask for this, ignore this mail: your
password stays as it is.
${textSignature(ctx)}`;
  const html = htmlFrame(
    ctx,
    subject,
    `<p>Hello ${escapeHtml(v.username)},</p>
<p>Someone (we hope you) asked to reset the password of your ${escapeHtml(ctx.product)} account.
To choose a new password, follow this link within ${v.minutes} minutes:</p>
${htmlAction(link, 'Choose a new password', v.token)}
<p>The link works once. If you did not ask for this, ignore this mail: your password stays as it is.</p>`,
  );
  return { subject, text, html, links: [link] };
}
