import { htmlFrame, textSignature, type MailContext, type RenderedMail } from './layout.js';

/** `npm run cli -- send-test-mail ADDRESS`: proves the SMTP settings work. */
export function testMail(ctx: MailContext): RenderedMail {
  const subject = `${ctx.product}: test mail`;
  return {
    subject,
    text: `This is a test mail from ${ctx.product}: the mail settings work.\n${textSignature(ctx)}`,
    html: htmlFrame(ctx, subject, '<p>This is a test mail: the mail settings work.</p>'),
    links: [],
  };
}
