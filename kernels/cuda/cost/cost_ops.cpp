// The cost kernels and runtime (cost_recorder.h): every entry point of kernels/cuda/*.h in namespace
// qcoder::cuda_cost, recording what the real kernel would move instead of launching it. The byte counts
// follow the kernels' access patterns (kernels/cuda/*.cu): each weight matrix read once per launch, each
// activation row read and written once, the KV rows of a segment read once per launch, recurrent state
// read and written once per segment.
#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "kernels/cuda/cost/cost_recorder.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/mixers.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/runtime.h"

namespace qcoder::cuda_cost {
namespace {

thread_local cost_recorder* active = nullptr;

constexpr std::int64_t f32 = 4;

std::int64_t element_size(cuda::element_type t) {
  switch (t) {
    case cuda::element_type::f32: return 4;
    case cuda::element_type::f16: return 2;
    case cuda::element_type::bf16: return 2;
    case cuda::element_type::f8_e4m3: return 1;
  }
  return 4;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return b > 0 ? (a + b - 1) / b : 0; }

// Bytes of one pass over a matrix: data, plus its block scales when it has them.
std::int64_t matrix_bytes(const cuda::device_matrix& m, bool has_scales) {
  std::int64_t b = m.rows * m.cols * element_size(m.type);
  if (has_scales) b += ceil_div(m.rows, m.block_rows) * ceil_div(m.cols, m.block_cols) * element_size(m.scale_type);
  return b;
}

// The matmul path picks gemm from this many rows of x (gemm.cu's gemm_min_rows); only the kernel's name
// depends on it here, not the bytes.
constexpr std::int64_t gemm_min_rows = 16;

result<cost_recorder*> recorder(const char* entry) {
  if (active == nullptr) return fail(errc::internal, "cuda_cost::{}: no cost recorder is active on this thread", entry);
  return active;
}

result<void> record(const char* entry, launch_record r) {
  QCODER_TRY(cost_recorder * rec, recorder(entry));
  r.kernel = entry;
  rec->record(r);
  return ok();
}

result<void> matmul_cost(const char* entry, const cuda::matmul_args& a) {
  launch_record r;
  r.weights = a.w.data;
  r.weight_bytes = matrix_bytes(a.w, a.w.scales != nullptr);
  r.weight_type = a.w.type;
  r.activation_bytes = a.n * (a.w.cols + a.w.rows) * f32;
  r.flops = 2.0 * static_cast<double>(a.n) * static_cast<double>(a.w.rows) * static_cast<double>(a.w.cols);
  return record(entry, r);
}

}  // namespace

// --- recorder ------------------------------------------------------------------------------------------

cost_recorder* active_recorder() { return active; }

cost_scope::cost_scope(cost_recorder& recorder) : recorder_(recorder) {
  recorder_.previous_ = active;
  active = &recorder_;
}
cost_scope::~cost_scope() { active = recorder_.previous_; }

void* cost_recorder::allocate(std::size_t bytes) {
  const std::uintptr_t at = next_fake_;
  // 256-byte aligned like cudaMalloc, and never two allocations at one address (also for 0 bytes).
  next_fake_ += (std::max<std::size_t>(bytes, 1) + 255) / 256 * 256;
  fake_sizes_[at] = bytes;
  device_bytes_ += static_cast<std::int64_t>(bytes);
  return reinterpret_cast<void*>(at);
}

void* cost_recorder::allocate_managed(std::size_t bytes) {
  if (bytes > scratch_size_ || scratch_.empty()) {
    // A larger scratch for this and later requests; the old ones stay alive for the pointers already out.
    scratch_size_ = std::max<std::size_t>(bytes, 64);
    scratch_.push_back(std::make_unique<std::byte[]>(scratch_size_));
  }
  void* p = scratch_.back().get();
  // Several live allocations alias one scratch: count each by a distinct key (the allocation's ordinal).
  const void* key = reinterpret_cast<const void*>(fake_base - 1 - managed_sizes_.size());
  managed_sizes_[key] = bytes;
  managed_bytes_ += static_cast<std::int64_t>(bytes);
  return p;
}

void cost_recorder::release(void* pointer) {
  const auto at = reinterpret_cast<std::uintptr_t>(pointer);
  if (auto it = fake_sizes_.find(at); it != fake_sizes_.end()) {
    device_bytes_ -= static_cast<std::int64_t>(it->second);
    fake_sizes_.erase(it);
  }
  // Managed memory is counted until the recorder goes: which of the aliased allocations a pointer was
  // cannot be told apart, and the states are released only when the run is over anyway.
}

bool cost_recorder::is_fake(const void* pointer) const { return reinterpret_cast<std::uintptr_t>(pointer) >= fake_base; }

void cost_recorder::note_copy(void* destination, const void* source, std::size_t bytes) {
  if (!is_fake(destination) || bytes == 0) return;
  copies_[reinterpret_cast<std::uintptr_t>(destination)] = copy_range{reinterpret_cast<std::uintptr_t>(source), bytes};
}

const void* cost_recorder::host_source(const void* device) const {
  const auto at = reinterpret_cast<std::uintptr_t>(device);
  auto it = copies_.upper_bound(at);
  if (it == copies_.begin()) return nullptr;
  --it;
  if (at >= it->first + it->second.bytes) return nullptr;
  return reinterpret_cast<const void*>(it->second.source + (at - it->first));
}

// --- runtime.h -----------------------------------------------------------------------------------------

result<void*> allocate(std::size_t bytes) {
  QCODER_TRY(cost_recorder * rec, recorder("allocate"));
  return rec->allocate(bytes);
}

result<void*> allocate_managed(std::size_t bytes) {
  QCODER_TRY(cost_recorder * rec, recorder("allocate_managed"));
  return rec->allocate_managed(bytes);
}

void release(void* pointer) {
  if (active != nullptr && pointer != nullptr) active->release(pointer);
}

// Host memory is real (the host code writes it); it is not device memory, so it is not counted.
result<void*> allocate_host(std::size_t bytes) {
  void* p = std::malloc(bytes == 0 ? 1 : bytes);
  if (p == nullptr) return fail(errc::io_error, "out of host memory allocating {} bytes", bytes);
  return p;
}
void release_host(void* pointer) { std::free(pointer); }
result<const void*> map_host(const void* host, std::size_t /*bytes*/) { return host; }
void unmap_host(const void* /*host*/) {}

result<void> copy(void* destination, const void* source, std::size_t bytes, CUstream_st* /*stream*/) {
  QCODER_TRY(cost_recorder * rec, recorder("copy"));
  rec->note_copy(destination, source, bytes);
  return ok();
}

result<void> zero(void* /*destination*/, std::size_t /*bytes*/, CUstream_st* /*stream*/) {
  QCODER_TRY(cost_recorder * rec, recorder("zero"));
  (void)rec;
  return ok();
}

// Streams, events and graphs are tokens: distinct non-null values that are never dereferenced.
namespace {
template <typename T>
T* token() {
  static std::atomic<std::uintptr_t> next{cost_recorder::fake_base - (std::uintptr_t{1} << 40)};
  return reinterpret_cast<T*>(next.fetch_add(64) + 64);
}
}  // namespace

result<CUstream_st*> create_stream() { return token<CUstream_st>(); }
void destroy_stream(CUstream_st* /*stream*/) {}
result<void> synchronize(CUstream_st* /*stream*/) { return ok(); }
result<CUevent_st*> create_event() { return token<CUevent_st>(); }
void destroy_event(CUevent_st* /*event*/) {}
result<void> record_event(CUevent_st* /*event*/, CUstream_st* /*stream*/) { return ok(); }
result<void> wait_event(CUstream_st* /*stream*/, CUevent_st* /*event*/) { return ok(); }
result<bool> event_done(CUevent_st* /*event*/) { return true; }
result<void> begin_capture(CUstream_st* /*stream*/) { return ok(); }
result<CUgraphExec_st*> end_capture(CUstream_st* /*stream*/) { return token<CUgraphExec_st>(); }
result<void> launch_graph(CUgraphExec_st* /*graph*/, CUstream_st* /*stream*/) { return ok(); }
void destroy_graph(CUgraphExec_st* /*graph*/) {}
// The kernels the time model charges are the sm_80+ ones (BF16 tensor-core gemm for prefill).
result<int> compute_capability() { return 90; }

// --- matmul.h ------------------------------------------------------------------------------------------

result<void> gemv(const cuda::matmul_args& args, CUstream_st* /*stream*/) { return matmul_cost("gemv", args); }
result<void> gemm(const cuda::matmul_args& args, CUstream_st* /*stream*/) { return matmul_cost("gemm", args); }
result<void> matmul(const cuda::matmul_args& args, CUstream_st* /*stream*/) {
  return matmul_cost(args.n >= gemm_min_rows ? "gemm" : "gemv", args);
}

result<void> expert_gemv(const cuda::expert_gemv_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  // The shape's data is unused by the kernel; whether the experts have scales is told by the shape's
  // scale type being set up for FP8 (the table's scales are device memory the cost run cannot read).
  r.expert_bytes = matrix_bytes(a.shape, a.shape.scales != nullptr || a.shape.type == cuda::element_type::f8_e4m3);
  r.routed_assignments = a.count;
  r.weight_type = a.shape.type;
  r.routed_bytes = a.count * r.expert_bytes;
  const std::int64_t x_rows = a.x_row_divisor > 0 ? ceil_div(a.count, a.x_row_divisor) : a.count;
  r.activation_bytes = (x_rows * a.shape.cols + a.count * a.shape.rows) * f32 + a.count * 4;
  r.flops = 2.0 * static_cast<double>(a.count) * static_cast<double>(a.shape.rows) * static_cast<double>(a.shape.cols);
  return record("expert_gemv", r);
}

// --- rms_norm.h ----------------------------------------------------------------------------------------

result<void> rms_norm(const cuda::rms_norm_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.weights = a.weight;
  r.vector_bytes = a.dim * element_size(a.weight_type);
  r.activation_bytes = 2 * a.rows * a.dim * f32;
  r.flops = 4.0 * static_cast<double>(a.rows * a.dim);
  return record("rms_norm", r);
}

// --- pointwise.h ---------------------------------------------------------------------------------------

result<void> embedding(const cuda::embedding_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.weights = a.table.data;
  r.weight_type = a.table.type;
  // n rows of the table, each with its row of block scales (a row's share of them).
  r.weight_bytes = a.n * matrix_bytes(a.table, a.table.scales != nullptr) / std::max<std::int64_t>(1, a.table.rows);
  r.activation_bytes = a.n * (4 + a.table.cols * f32);
  return record("embedding", r);
}

result<void> axpy(const cuda::axpy_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = 3 * a.count * f32;
  r.flops = 2.0 * static_cast<double>(a.count);
  return record("axpy", r);
}

result<void> rms_norm_gated(const cuda::rms_norm_gated_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.weights = a.weight.data;
  r.vector_bytes = a.dim * element_size(a.weight.type);
  r.activation_bytes = 3 * a.rows * a.dim * f32;
  r.flops = 8.0 * static_cast<double>(a.rows * a.dim);
  return record("rms_norm_gated", r);
}

result<void> silu_glu(const cuda::silu_glu_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = 3 * a.count * f32;
  r.flops = 6.0 * static_cast<double>(a.count);
  return record("silu_glu", r);
}

result<void> deltanet_split(const cuda::deltanet_split_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.weights = a.a_log.data;
  r.vector_bytes = a.v_heads * (element_size(a.a_log.type) + element_size(a.dt_bias.type));
  const std::int64_t r_heads = a.k_heads > 0 ? a.v_heads / a.k_heads : 0;
  const std::int64_t qkvz = a.k_heads * (2 * a.dk + 2 * r_heads * a.dv);
  const std::int64_t mixed = 2 * a.k_heads * a.dk + a.v_heads * a.dv;
  r.activation_bytes = a.n * (qkvz + 2 * a.v_heads + mixed + a.v_heads * a.dv + 2 * a.v_heads) * f32;
  return record("deltanet_split", r);
}

result<void> router_top_k(const cuda::router_top_k_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = a.n * a.experts * f32 + a.n * a.k * 8;
  r.flops = 4.0 * static_cast<double>(a.n * a.experts);
  return record("router_top_k", r);
}

result<void> moe_combine(const cuda::moe_combine_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = (a.n * a.k * a.dim + a.n * a.k + 2 * a.n * a.dim + a.n) * f32;
  r.flops = 2.0 * static_cast<double>(a.n * (a.k + 1) * a.dim);
  return record("moe_combine", r);
}

result<void> argmax(const cuda::argmax_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = a.rows * a.count * f32 + a.rows * 4;
  return record("argmax", r);
}

result<void> sample(const cuda::sample_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = 2 * a.vocab * f32;  // the kernel passes over the logits about twice (max, then mass)
  return record("sample", r);
}

// --- mixers.h ------------------------------------------------------------------------------------------

result<void> attention_prepare(const cuda::attention_prepare_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.weights = a.q_norm.data;
  r.vector_bytes = a.head_dim * (element_size(a.q_norm.type) + element_size(a.k_norm.type));
  // q rewritten in place (its half of q_gate), k in place, v read; k and v rows written to the cache.
  r.activation_bytes = a.n * (2 * a.heads * a.head_dim + 3 * a.kv_heads * a.head_dim) * f32;
  r.state_bytes = 2 * a.n * a.kv_stride * f32;
  r.flops = 10.0 * static_cast<double>(a.n * (a.heads + a.kv_heads) * a.head_dim);
  return record("attention_prepare", r);
}

result<void> attention(const cuda::attention_args& a, CUstream_st* /*stream*/) {
  QCODER_TRY(cost_recorder * rec, recorder("attention"));
  launch_record r;
  // Each segment's rows read its keys and values once: the context plus the rows of this chunk (which
  // attention_prepare has just written); spread evenly over segments.
  const std::int64_t segments = std::max<std::int64_t>(1, a.rows.segments);
  const std::int64_t rows_per_segment = ceil_div(a.n, segments);
  const std::int64_t keys = rec->context() + rows_per_segment;
  r.state_bytes = 2 * segments * keys * a.kv_stride * f32;
  r.activation_bytes = a.n * (2 * a.heads * a.head_dim + a.heads * a.head_dim) * f32;
  // q·k and softmax × v per query head and key.
  r.flops = 4.0 * static_cast<double>(a.n) * static_cast<double>(a.heads) * static_cast<double>(keys) *
            static_cast<double>(a.head_dim);
  return record("attention", r);
}

result<void> causal_conv1d_silu(const cuda::causal_conv1d_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.weights = a.weight.data;
  r.vector_bytes = a.channels * a.taps * element_size(a.weight.type);
  r.activation_bytes = 2 * a.n * a.channels * f32;
  r.state_bytes = 2 * a.rows.segments * a.channels * (a.taps - 1) * f32;
  r.flops = 2.0 * static_cast<double>(a.n * a.channels * a.taps);
  return record("causal_conv1d_silu", r);
}

result<void> l2_norm(const cuda::l2_norm_args& a, CUstream_st* /*stream*/) {
  launch_record r;
  r.activation_bytes = 2 * a.rows * a.heads * a.dim * f32;
  r.flops = 3.0 * static_cast<double>(a.rows * a.heads * a.dim);
  return record("l2_norm", r);
}

namespace {
result<void> delta_rule_cost(const char* entry, const cuda::delta_rule_args& a) {
  launch_record r;
  // Each segment's state [v_heads, dk, dv] is read and written once per launch (kept in registers and
  // shared memory over the segment's rows).
  r.state_bytes = 2 * a.rows.segments * a.v_heads * a.dk * a.dv * f32;
  r.activation_bytes = a.n * (2 * a.k_heads * a.dk + 2 * a.v_heads * a.dv + 2 * a.v_heads) * f32;
  // Per row and value head: decay, Sᵀk, the rank-one update and Sᵀq, each a pass over dk × dv.
  r.flops = 8.0 * static_cast<double>(a.n * a.v_heads * a.dk * a.dv);
  return record(entry, r);
}
}  // namespace

result<void> delta_rule_recurrent(const cuda::delta_rule_args& args, CUstream_st* /*stream*/) {
  return delta_rule_cost("delta_rule_recurrent", args);
}
result<void> delta_rule_chunked(const cuda::delta_rule_args& args, CUstream_st* /*stream*/) {
  return delta_rule_cost("delta_rule_chunked", args);
}

}  // namespace qcoder::cuda_cost
