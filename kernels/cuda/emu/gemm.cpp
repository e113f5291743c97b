// The gemm and matmul kernel source, compiled by the host compiler against the emulator (see kernels/cuda/kernel.cuh).
#include "kernels/cuda/gemm.cu"
