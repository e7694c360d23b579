// Stop requests from signals. The first SIGINT/SIGTERM only raises a flag: the training loop notices it
// between steps, saves a checkpoint and returns. A second one exits at once (128 + the signal's number) for a user who
// does not want to wait for the save.
import { signalExitCode } from '../errors.js';

export class StopRequest {
  signal: string | null = null;
  private readonly handlers: [NodeJS.Signals, () => void][] = [];

  get requested(): boolean {
    return this.signal !== null;
  }

  /** Raises the flag by hand (tests, a time budget). */
  request(reason: string): void {
    this.signal ??= reason;
  }

  /** Listens for signals until dispose(). */
  listen(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): this {
    for (const s of signals) {
      const h = (): void => {
        if (this.signal !== null) process.exit(signalExitCode(s));
        this.signal = s;
      };
      process.on(s, h);
      this.handlers.push([s, h]);
    }
    return this;
  }

  dispose(): void {
    for (const [s, h] of this.handlers) process.off(s, h);
    this.handlers.length = 0;
  }
}
