// The device forward pass on the CUDA runtime (see device_forward_impl.inc).
#define QCODER_DEVICE_OPS qcoder::cuda
#define QCODER_DEVICE_IMPL on_cuda
#include "engine/model/device_forward_impl.inc"
