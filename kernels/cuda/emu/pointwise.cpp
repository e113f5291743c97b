// The pointwise kernel sources, compiled by the host compiler against the emulator (see kernels/cuda/kernel.cuh).
#include "kernels/cuda/pointwise.cu"
