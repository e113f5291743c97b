// The runtime interface on the emulator (see kernels/cuda/runtime.cu).
#include "kernels/cuda/runtime.cu"
