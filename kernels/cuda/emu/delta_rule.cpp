// The delta-rule kernels' source, compiled by the host compiler against the emulator (see kernels/cuda/kernel.cuh).
#include "kernels/cuda/delta_rule.cu"
