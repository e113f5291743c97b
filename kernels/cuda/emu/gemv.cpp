// The gemv and expert_gemv kernel source, compiled by the host compiler against the emulator (see kernels/cuda/kernel.cuh).
#include "kernels/cuda/gemv.cu"
