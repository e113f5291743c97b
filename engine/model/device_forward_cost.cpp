// The device forward pass on the cost kernels (kernels/cuda/cost/): nothing runs, every launch is recorded
// with its bytes and FLOPs; engine/perf/decode_cost.cpp drives it (see device_forward_impl.inc).
#define QCODER_DEVICE_OPS qcoder::cuda_cost
#define QCODER_DEVICE_IMPL costed
#include "engine/model/device_forward_impl.inc"
