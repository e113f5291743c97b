// The device forward pass on the CUDA emulator (see device_forward_impl.inc).
#define QCODER_DEVICE_OPS qcoder::cuda_emu
#define QCODER_DEVICE_IMPL emulated
#include "engine/model/device_forward_impl.inc"
