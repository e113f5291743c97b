// The RMSNorm kernel source, compiled by the host compiler against the emulator (see kernels/cuda/kernel.cuh).
#include "kernels/cuda/rms_norm.cu"
