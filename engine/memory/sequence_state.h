// The memory of one sequence: attention K/V for the full-attention layers and the DeltaNet conv and
// recurrent state for the linear-attention layers. The model asks for a layer's memory through kv() and
// recurrent() and never sees how it is laid out; the prefix cache (later) snapshots and restores it.
//
// Capacity in tokens is fixed at construction (all memory is allocated then, none during the forward pass),
// from the memory resource given then: the heap for the CPU backend, memory a GPU can reach for a device
// backend (qwen3_next::new_state picks). A copy allocates from the same resource as its original.
// Owned by one thread at a time (the inference thread).
#pragma once

#include <cstdint>
#include <memory_resource>
#include <vector>

#include "engine/model_config.h"

namespace qcoder::engine {

// Rows of keys and values of one attention layer: token p's keys for all KV heads are at
// keys + p * stride (head h at offset h * head_dim), likewise values.
struct kv_view {
  float* keys = nullptr;
  float* values = nullptr;
  std::int64_t stride = 0;
};

// The recurrent memory of one DeltaNet layer.
struct recurrent_view {
  float* conv = nullptr;  // [conv_dim, K-1]: the last K-1 inputs of each channel, oldest first
  float* ssm = nullptr;   // [n_v, d_k, d_v]: the delta-rule state of each value head
  std::int64_t conv_size = 0;  // floats at conv
  std::int64_t ssm_size = 0;   // floats at ssm
};

class sequence_state {
 public:
  sequence_state(const model_config& config, std::int64_t capacity_tokens,
                 std::pmr::memory_resource* memory = std::pmr::get_default_resource());

  std::int64_t length() const { return length_; }      // tokens already in the memory
  std::int64_t capacity() const { return capacity_; }
  void advance(std::int64_t tokens) { length_ += tokens; }
  // Back to the empty sequence (zeroes the recurrent state; K/V rows are simply forgotten).
  void reset();

  // A point to come back to after a forward whose tokens may be taken back (speculative decoding): the
  // length and the recurrent (DeltaNet) memory. Attention K/V rows past the length need no copy: they are
  // overwritten by whatever comes next.
  struct rollback_point {
    std::int64_t length = 0;
    std::vector<float> recurrent;
  };
  void save(rollback_point& into) const;
  void restore(const rollback_point& from);

  kv_view kv(std::int64_t layer);
  recurrent_view recurrent(std::int64_t layer);
  // Read-only views, for snapshots (the prefix cache).
  kv_view kv(std::int64_t layer) const { return const_cast<sequence_state*>(this)->kv(layer); }
  recurrent_view recurrent(std::int64_t layer) const { return const_cast<sequence_state*>(this)->recurrent(layer); }
  std::int64_t kv_stride() const { return kv_stride_; }  // floats per token per attention layer (K or V)

  std::int64_t bytes() const;

 private:
  struct layer_memory {
    explicit layer_memory(std::pmr::memory_resource* memory) : keys(memory), values(memory), conv(memory), ssm(memory) {}
    // pmr containers would copy into the default resource; a copy of device-reachable memory must stay so.
    layer_memory(const layer_memory& o)
        : keys(o.keys, o.keys.get_allocator()),
          values(o.values, o.values.get_allocator()),
          conv(o.conv, o.conv.get_allocator()),
          ssm(o.ssm, o.ssm.get_allocator()) {}
    layer_memory(layer_memory&&) = default;
    layer_memory& operator=(const layer_memory&) = default;
    layer_memory& operator=(layer_memory&&) = default;
    std::pmr::vector<float> keys, values;  // attention: [capacity, n_kv * head_dim]
    std::pmr::vector<float> conv, ssm;     // DeltaNet
  };
  std::int64_t capacity_ = 0;
  std::int64_t length_ = 0;
  std::int64_t kv_stride_ = 0;
  std::vector<layer_memory> layers_;
};

}  // namespace qcoder::engine
