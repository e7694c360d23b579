// What a training run reports. The library emits these; the CLI renders them (bar or plain lines).
export type TrainEvent =
  | { type: 'start'; step: number; totalSteps: number; itemsPerStep: number; resumed: boolean }
  | {
      type: 'progress';
      step: number;                     // optimizer steps done
      totalSteps: number;
      epoch: number;                    // fractional epochs done
      loss: number;                     // mean loss over the steps since the previous progress event
      lr: number;
      metrics: Record<string, number>;  // task-specific (PSNR, codebook usage, …), over the same window
      itemsPerSec: number;              // recent throughput (images or sequences per second)
      elapsedSec: number;               // training time of this process, checkpoints excluded
      etaSec: number;                   // remaining steps at the recent throughput
    }
  | { type: 'epoch'; epoch: number; step: number; metrics: Record<string, number> }
  | { type: 'eval'; epoch: number; step: number; metrics: Record<string, number> }  // every evalEvery steps
  | { type: 'checkpoint'; step: number; path: string; ms: number }
  | { type: 'nonfinite'; step: number; loss: number; gradNorm: number; consecutive: number }
  | { type: 'note'; step: number; message: string }
  | { type: 'stopped'; step: number; signal: string; path: string }
  | { type: 'done'; step: number; elapsedSec: number };

export type TrainEventSink = (e: TrainEvent) => void;
