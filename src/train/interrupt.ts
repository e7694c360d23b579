// Stop requests from signals. The first SIGINT/SIGTERM only raises a flag: the training loop notices it between
// steps, saves a checkpoint and returns. The library never exits the process: a further signal goes to `onRepeat`,
// where the command may exit at once for a user who does not want to wait for the save.
export class StopRequest {
  signal: string | null = null;
  private at = 0;  // performance.now() of the first signal
  private readonly handlers: [NodeJS.Signals, () => void][] = [];

  get requested(): boolean {
    return this.signal !== null;
  }

  /** Raises the flag by hand (tests, a time budget). */
  request(reason: string): void {
    this.signal ??= reason;
  }

  /**
   * Listens for signals until dispose(); a signal after the first goes to onRepeat with the milliseconds since the
   * first (default: ignored).
   */
  listen(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'],
    onRepeat?: (signal: NodeJS.Signals, msSinceFirst: number) => void): this {
    for (const s of signals) {
      const h = (): void => {
        if (this.signal !== null) onRepeat?.(s, performance.now() - this.at);
        else {
          this.signal = s;
          this.at = performance.now();
        }
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
