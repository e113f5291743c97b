// The conv1d and L2-norm kernels' source, compiled by the host compiler against the emulator (see kernels/cuda/kernel.cuh).
#include "kernels/cuda/conv1d.cu"
