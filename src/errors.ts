/** The one error type ctfgen throws on bad input: the message says what, where, and what was expected. */
export class CtfError extends Error {
  override name = 'CtfError';
}
