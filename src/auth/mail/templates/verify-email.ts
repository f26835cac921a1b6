import { escapeHtml, htmlAction, htmlFrame, textSignature, tokenLink, type MailContext, type RenderedMail } from './layout.js';

/** The link that proves an address is its owner's. */
export function verifyEmailMail(ctx: MailContext, v: { username: string; token: string; hours: number }): RenderedMail {
  const link = tokenLink(ctx, '/verify-email', v.token);
  const subject = `Confirm your email address for ${ctx.product}`;
  const text = `Hello ${v.username},

Please confirm that this address belongs to your ${ctx.product} account
by opening this link within ${v.hours} hours:

${link}

or enter this code on the verification page: ${v.token}

If you did not create an account or change its address, ignore this mail.
${textSignature(ctx)}`;
  const html = htmlFrame(
    ctx,
    subject,
    `<p>Hello ${escapeHtml(v.username)},</p>
<p>Please confirm that this address belongs to your ${escapeHtml(ctx.product)} account within ${v.hours} hours:</p>
${htmlAction(link, 'Confirm my address', v.token)}
<p>If you did not create an account or change its address, ignore this mail.</p>`,
  );
  return { subject, text, html, links: [link] };
}
