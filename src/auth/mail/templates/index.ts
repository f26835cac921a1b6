// Every mail Gatehouse sends: one file each, plain text and HTML.
export { emailChangedMail } from './email-changed.js';
export { passwordResetDoneMail } from './password-reset-done.js';
export { passwordResetMail } from './password-reset.js';
export { testMail } from './test-mail.js';
export { verifyEmailMail } from './verify-email.js';
export type { MailContext, RenderedMail } from './layout.js';
