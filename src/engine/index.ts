// ctfgen/engine: the tensor engine on its own — tensors over JS-owned buffers, the autodiff tape, the ops with their
// backward kernels (OpenBLAS sgemm and C++ loops in the native addon), AdamW and schedules, sampling kernels, RNG.
export { backward, gradOf, isRecording, noGrad, record, type TapeNode } from './autograd.js';
export { blasInfo, blasSetThreads, kernelProfile, profileReport } from './native.js';
export * from './ops/attention.js';
export * from './ops/conv.js';
export * from './ops/elementwise.js';
export * from './ops/embedding.js';
export * from './ops/fused.js';
export * from './ops/matmul.js';
export * from './ops/norm.js';
export * from './ops/reduce.js';
export * from './ops/rope.js';
export * from './ops/shape.js';
export * from './ops/softmax.js';
export * from './optim.js';
export { Rng, type RngState } from './rng.js';
export * from './sampling.js';
export * from './schedule.js';
export * from './tensor.js';
